"""The access policy: globs within and across segments, rules by subject, role and tenant,
the platform-admin default, and decisions remembered per policy."""

from __future__ import annotations

import pytest

from mainmast.runtime import Principal
from mainmast_config._audit import AccessKind
from mainmast_config._policy import (
    AccessPolicy,
    AccessRule,
    Patterns,
    compile_pattern,
    pattern_problem,
)

SECRET = AccessKind.SECRET
SETTING = AccessKind.SETTING
PAYMENTS_API = Principal("tenants/acme", "tenants/acme/serviceAccounts/payments-api")


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("payments/stripe-key", "payments/stripe-key", True),
        ("payments/stripe-key", "payments/stripe-key2", False),
        ("payments/*", "payments/stripe-key", True),
        ("payments/*", "payments/eu/stripe-key", False),
        ("payments/**", "payments/eu/stripe-key", True),
        ("payments/**", "payments", False),
        ("*", "database-password", True),
        ("*", "payments/stripe-key", False),
        ("**", "payments/eu/stripe-key", True),
        ("*/db-password", "orders/db-password", True),
        ("*/db-password", "a/b/db-password", False),
        ("**/db-password", "a/b/db-password", True),
        ("checkout.*", "checkout.max-items", True),
        ("checkout.*", "checkoutXmax", False),
        ("tenants/*/roles/owner", "tenants/acme/roles/owner", True),
    ],
)
def test_a_star_matches_within_a_segment_and_two_stars_across_segments(
    pattern: str, name: str, *, matches: bool
) -> None:
    assert (compile_pattern(pattern).fullmatch(name) is not None) is matches


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "empty"),
        ("payments/[a-z]", "only letters"),
        ("payments/***", "'***' means nothing"),
        ("a b", "only letters"),
    ],
)
def test_patterns_with_characters_a_name_cannot_have_are_refused(
    pattern: str, problem: str
) -> None:
    assert problem in (pattern_problem(pattern) or "")
    with pytest.raises(ValueError, match=problem.replace("*", r"\*")):
        compile_pattern(pattern)


def test_a_rule_applies_by_subject_or_role_and_only_in_its_tenants() -> None:
    rule = AccessRule(
        subjects=Patterns(("tenants/acme/serviceAccounts/payments-api",)),
        roles=Patterns(("tenants/*/roles/owner",)),
        tenants=Patterns(("tenants/acme",)),
        secrets=Patterns(("payments/*",)),
    )
    owner = Principal("tenants/acme", "tenants/acme/users/olga", ("tenants/acme/roles/owner",))
    member = Principal("tenants/acme", "tenants/acme/users/mia", ("tenants/acme/roles/member",))
    foreign_owner = Principal(
        "tenants/globex", "tenants/globex/users/gus", ("tenants/globex/roles/owner",)
    )

    assert [rule.applies_to(p) for p in (PAYMENTS_API, owner, member, foreign_owner)] == [
        True,
        True,
        False,
        False,
    ]


def test_secrets_and_settings_are_granted_apart() -> None:
    policy = AccessPolicy(
        [
            AccessRule(
                subjects=Patterns((PAYMENTS_API.subject,)),
                secrets=Patterns(("payments/*",)),
                settings=Patterns(("payments.*",)),
            )
        ],
        source="test",
    )

    assert policy.allows(PAYMENTS_API, SECRET, "payments/stripe-key")
    assert not policy.allows(PAYMENTS_API, SETTING, "payments/stripe-key")
    assert policy.allows(PAYMENTS_API, SETTING, "payments.retries")
    assert not policy.allows(PAYMENTS_API, SECRET, "payments.retries")
    assert not policy.allows(PAYMENTS_API, SECRET, "orders/db-password")
    assert not policy.allows(PAYMENTS_API, AccessKind.SECRET_LIST, "payments/stripe-key")


def test_a_rule_must_name_whom_and_what_it_grants() -> None:
    with pytest.raises(ValueError, match="subjects or roles"):
        AccessRule(secrets=Patterns(("**",)))
    with pytest.raises(ValueError, match="secrets or settings"):
        AccessRule(roles=Patterns(("roles/platform-admin",)))


def test_without_a_file_only_platform_admins_read_anything() -> None:
    policy = AccessPolicy.platform_admins_only()
    admin = Principal("tenants/acme", "tenants/acme/users/root", ("roles/platform-admin",))

    assert policy.allows(admin, SECRET, "payments/eu/stripe-key")
    assert policy.allows(admin, SETTING, "checkout.max-items")
    assert not policy.allows(PAYMENTS_API, SECRET, "payments/stripe-key")
    assert "roles/platform-admin" in policy.source


def test_the_everyone_policy_lets_any_caller_read_anything() -> None:
    policy = AccessPolicy.everyone("dev mode")

    assert policy.allows(Principal("", "anyone"), SECRET, "a/b/c")
    assert policy.allows(Principal("", "anyone"), SETTING, "x")
    assert policy.source == "dev mode"


def test_a_decision_is_taken_per_identity_whatever_the_credential() -> None:
    policy = AccessPolicy(
        [AccessRule(subjects=Patterns((PAYMENTS_API.subject,)), secrets=Patterns(("**",)))],
        source="test",
    )
    with_token = Principal(PAYMENTS_API.tenant, PAYMENTS_API.subject, credential="token-1")
    other_token = Principal(PAYMENTS_API.tenant, PAYMENTS_API.subject, credential="token-2")

    assert policy.allows(with_token, SECRET, "x")
    assert policy.allows(other_token, SECRET, "x")
    assert not policy.allows(Principal("tenants/acme", "tenants/acme/users/mia"), SECRET, "x")
