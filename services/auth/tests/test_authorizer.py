"""Authorization: default roles, wildcards, tenant isolation, and equivalence with Casbin.

The property tests generate policy stores with hypothesis, hostile ones included (grants
and assignments that reach across tenants), and compare every decision with a plain
Casbin enforcer of the same model and with a naive reference written from the rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import casbin
import pytest
from casbin.persist.adapter import Adapter
from casbin.persist.adapters import FileAdapter, StringAdapter
from hypothesis import given, settings
from hypothesis import strategies as st

from mainmast.auth import AuthErrorReason
from mainmast.errors import ValidationError
from mainmast_auth._authorizer import (
    DEFAULT_ROLE_IDS,
    Authorizer,
    default_tenant_lines,
    platform_lines,
)
from mainmast_auth._policy_model import (
    CASBIN_MODEL,
    MAX_HIERARCHY_LEVEL,
    PolicyChange,
    PolicyChangeKind,
    PolicyLine,
    Section,
)

ACME, GLOBEX = "tenants/acme", "tenants/globex"
ALICE, BOB = f"{ACME}/users/alice", f"{ACME}/users/bob"
WORKER = f"{ACME}/serviceAccounts/worker"
GINA = f"{GLOBEX}/users/gina"
ROOT = f"{GLOBEX}/users/root"


class _LinesAdapter(Adapter):
    """A Casbin adapter over lines in memory: what a database adapter loads, minus the database."""

    def __init__(self, lines: Iterable[PolicyLine]) -> None:
        self.lines = list(lines)

    def load_policy(self, model: Any) -> None:
        for line in self.lines:
            model.model[line.section.value][line.ptype].policy.append(list(line.rule))


def casbin_enforcer(lines: Iterable[PolicyLine]) -> Any:
    return casbin.Enforcer(casbin.Enforcer.new_model(text=CASBIN_MODEL), _LinesAdapter(lines))


@pytest.fixture
def authorizer() -> Authorizer:
    authorizer = Authorizer()
    authorizer.add_platform_role()
    authorizer.add_tenant(ACME)
    authorizer.add_tenant(GLOBEX)
    authorizer.assign_role(ALICE, f"{ACME}/roles/owner")
    authorizer.assign_role(BOB, f"{ACME}/roles/viewer")
    authorizer.assign_role(WORKER, f"{ACME}/roles/member")
    authorizer.assign_role(GINA, f"{GLOBEX}/roles/admin")
    authorizer.assign_role(ROOT, "roles/platform-admin")
    return authorizer


# Default roles


@pytest.mark.parametrize(
    ("principal", "permission", "allowed"),
    [
        (ALICE, "tenants:delete", True),  # owner: *:*
        (ALICE, "invoices:approve", True),
        (BOB, "invoices:read", True),  # viewer: *:read
        (BOB, "users:read", True),
        (BOB, "invoices:write", False),
        (BOB, "users:create", False),
        (WORKER, "invoices:read", True),  # member inherits viewer
        (WORKER, "invoices:write", False),
    ],
)
def test_default_roles_grant_what_they_promise(
    authorizer: Authorizer, principal: str, permission: str, allowed: bool
) -> None:
    assert authorizer.check(principal, ACME, permission) is allowed


@pytest.mark.parametrize(
    ("permission", "allowed"),
    [
        ("users:create", True),  # admin: users:*
        ("service-accounts:disable", True),
        ("roles:assign", True),
        ("tokens:revoke", True),
        ("invoices:read", True),  # inherited from member, from viewer
        ("invoices:write", False),
        ("tokens:issue", False),
    ],
)
def test_admin_manages_principals_and_inherits_member_and_viewer(
    authorizer: Authorizer, permission: str, allowed: bool
) -> None:
    assert authorizer.check(GINA, GLOBEX, permission) is allowed


def test_every_tenant_gets_the_four_default_roles() -> None:
    lines = default_tenant_lines(ACME)
    roles = {line.rule[0] for line in lines if line.section is Section.GRANT} | {
        line.rule[1] for line in lines if line.section is Section.ASSIGNMENT
    }
    assert roles == {f"{ACME}/roles/{role_id}" for role_id in DEFAULT_ROLE_IDS}
    assert all(line.rule[-1] == ACME for line in lines if line.section is Section.ASSIGNMENT)
    assert platform_lines() == [PolicyLine(Section.GRANT, ("roles/platform-admin", "*", "*", "*"))]


def test_adding_a_tenant_twice_changes_nothing(authorizer: Authorizer) -> None:
    assert authorizer.add_tenant(ACME) == []
    assert authorizer.add_platform_role() == []


# Wildcards


@pytest.mark.parametrize(
    ("granted", "requested", "allowed"),
    [
        ("invoices:read", "invoices:read", True),
        ("invoices:read", "invoices:write", False),
        ("invoices:read", "orders:read", False),
        ("invoices:*", "invoices:read", True),
        ("invoices:*", "invoices:delete", True),
        ("invoices:*", "orders:read", False),
        ("*:read", "invoices:read", True),
        ("*:read", "invoices:write", False),
        ("*:*", "anything:goes", True),
        # A requested wildcard is literal: all actions, held only through a wildcard grant.
        ("invoices:read", "invoices:*", False),
        ("invoices:*", "invoices:*", True),
        ("*:read", "*:read", True),
        ("invoices:read", "*:read", False),
        ("billing.invoices:read", "billing.invoices:read", True),
        ("billing.invoices:read", "billing:read", False),
    ],
)
def test_wildcard_semantics(granted: str, requested: str, allowed: bool) -> None:
    authorizer = Authorizer()
    authorizer.grant_permission(f"{ACME}/roles/custom", granted)
    authorizer.assign_role(ALICE, f"{ACME}/roles/custom")
    assert authorizer.check(ALICE, ACME, requested) is allowed


# Tenant isolation


def test_a_principal_is_denied_in_another_tenant_whatever_the_policies_say(
    authorizer: Authorizer,
) -> None:
    # Lines no API call would write, as if someone edited the policy table by hand.
    authorizer.apply(
        [
            PolicyChange(
                PolicyChangeKind.ADD,
                PolicyLine(Section.ASSIGNMENT, (ALICE, f"{GLOBEX}/roles/owner", GLOBEX)),
            ),
            PolicyChange(
                PolicyChangeKind.ADD, PolicyLine(Section.GRANT, (ALICE, GLOBEX, "*", "*"))
            ),
            PolicyChange(
                PolicyChangeKind.ADD,
                PolicyLine(Section.GRANT, (f"{ACME}/roles/owner", GLOBEX, "*", "*")),
            ),
            PolicyChange(
                PolicyChangeKind.ADD,
                PolicyLine(Section.GRANT, (f"{ACME}/roles/owner", "*", "*", "*")),
            ),
        ]
    )
    # A plain Casbin enforcer would allow it...
    assert casbin_enforcer(authorizer.lines()).enforce(ALICE, GLOBEX, "invoices", "read")
    # ...the authorizer does not.
    assert not authorizer.check(ALICE, GLOBEX, "invoices:read")
    assert authorizer.check(ALICE, ACME, "invoices:read")


def test_the_platform_admin_acts_in_every_tenant(authorizer: Authorizer) -> None:
    for tenant in (ACME, GLOBEX, "tenants/initech"):
        assert authorizer.check(ROOT, tenant, "users:create")
    assert authorizer.is_platform_admin(ROOT)
    assert not authorizer.is_platform_admin(ALICE)


def test_platform_rights_come_only_from_platform_roles(authorizer: Authorizer) -> None:
    # The owner's *:* is a right inside the tenant, not over the platform.
    assert not authorizer.check_platform(ALICE, "tenants:create")
    assert authorizer.check_platform(ROOT, "tenants:create")
    assert authorizer.check_platform(ROOT, "signing-keys:rotate")


def test_a_role_of_another_tenant_cannot_be_assigned(authorizer: Authorizer) -> None:
    with pytest.raises(ValidationError) as caught:
        authorizer.assign_role(ALICE, f"{GLOBEX}/roles/admin")
    assert caught.value.reason == AuthErrorReason.ROLE_TENANT_MISMATCH.value
    assert caught.value.metadata == {"role": f"{GLOBEX}/roles/admin", "principal": ALICE}


# Changes and their persistence


def test_changes_are_reported_once_and_removals_undo_them(authorizer: Authorizer) -> None:
    role = f"{ACME}/roles/auditor"
    (granted,) = authorizer.grant_permission(role, "audit-logs:export")
    assert granted == PolicyChange(
        PolicyChangeKind.ADD, PolicyLine(Section.GRANT, (role, ACME, "audit-logs", "export"))
    )
    assert (granted.line.section.value, granted.line.ptype) == ("p", "p")
    assert authorizer.grant_permission(role, "audit-logs:export") == []
    (assigned,) = authorizer.assign_role(BOB, role)
    assert assigned.line == PolicyLine(Section.ASSIGNMENT, (BOB, role, ACME))
    assert authorizer.check(BOB, ACME, "audit-logs:export")

    assert (
        authorizer.revoke_permission(role, "audit-logs:export")[0].kind is PolicyChangeKind.REMOVE
    )
    assert authorizer.revoke_permission(role, "audit-logs:export") == []
    assert not authorizer.check(BOB, ACME, "audit-logs:export")
    assert authorizer.unassign_role(BOB, role)[0].kind is PolicyChangeKind.REMOVE
    assert authorizer.unassign_role(BOB, role) == []


def test_another_replica_applying_the_changes_decides_the_same(authorizer: Authorizer) -> None:
    replica = Authorizer(authorizer.lines())
    changes = [
        *authorizer.grant_permission(f"{ACME}/roles/viewer", "reports:export"),
        *authorizer.unassign_role(WORKER, f"{ACME}/roles/member"),
        *authorizer.assign_role(WORKER, f"{ACME}/roles/admin"),
    ]
    assert not replica.check(BOB, ACME, "reports:export")
    replica.apply(changes)
    for principal in (ALICE, BOB, WORKER):
        for permission in ("reports:export", "users:create", "invoices:read"):
            assert replica.check(principal, ACME, permission) == authorizer.check(
                principal, ACME, permission
            )
    assert sorted(replica.lines(), key=str) == sorted(authorizer.lines(), key=str)


def test_replacing_the_lines_swaps_everything_at_once(authorizer: Authorizer) -> None:
    authorizer.replace_lines(default_tenant_lines(ACME))
    assert not authorizer.check(ALICE, ACME, "invoices:read")  # the assignment is gone
    assert len(authorizer) == len(default_tenant_lines(ACME))


def test_lines_survive_a_round_trip_through_casbin_adapters(
    authorizer: Authorizer, tmp_path: Path
) -> None:
    string_adapter = StringAdapter("")
    string_adapter.save_policy(authorizer.casbin_model())
    from_string = Authorizer.from_adapter(StringAdapter(string_adapter.line))
    assert sorted(from_string.lines(), key=str) == sorted(authorizer.lines(), key=str)

    policy_file = tmp_path / "policy.csv"
    policy_file.write_text("")
    FileAdapter(str(policy_file)).save_policy(authorizer.casbin_model())
    assert "p, roles/platform-admin, *, *, *" in policy_file.read_text().splitlines()
    from_file = Authorizer.from_adapter(FileAdapter(str(policy_file)))
    assert sorted(from_file.lines(), key=str) == sorted(authorizer.lines(), key=str)


def test_reading_roles_and_permissions(authorizer: Authorizer) -> None:
    authorizer.assign_role(ALICE, "roles/platform-admin")
    assert authorizer.roles_of(ALICE) == ["roles/platform-admin", f"{ACME}/roles/owner"]
    assert authorizer.permissions_of(f"{ACME}/roles/admin") == [
        "roles:*",
        "service-accounts:*",
        "tokens:revoke",
        "users:*",
    ]
    assert authorizer.permissions_of(f"{ACME}/roles/member") == []


# Bad input


@pytest.mark.parametrize(
    ("principal", "tenant", "permission", "reason"),
    [
        ("alice", ACME, "users:read", "INVALID_RESOURCE_NAME"),
        (f"{ACME}/groups/admins", ACME, "users:read", "INVALID_RESOURCE_NAME"),
        (f"{ACME}/users/Alice", ACME, "users:read", "INVALID_RESOURCE_NAME"),
        (f"{ACME}/users/alice/x", ACME, "users:read", "INVALID_RESOURCE_NAME"),
        (ALICE, "acme", "users:read", "INVALID_RESOURCE_NAME"),
        (ALICE, "*", "users:read", "INVALID_RESOURCE_NAME"),
        (ALICE, "tenants/*", "users:read", "INVALID_RESOURCE_NAME"),
        (ALICE, ACME, "users", "INVALID_PERMISSION"),
        (ALICE, ACME, "users:read:all", "INVALID_PERMISSION"),
        (ALICE, ACME, "Users:read", "INVALID_PERMISSION"),
        (ALICE, ACME, "users:re*d", "INVALID_PERMISSION"),
        (ALICE, ACME, ":read", "INVALID_PERMISSION"),
        (ALICE, ACME, "users, read", "INVALID_PERMISSION"),
        (ALICE, ACME, "a" * 64 + ":read", "INVALID_PERMISSION"),
    ],
)
def test_malformed_checks_are_validation_errors(
    authorizer: Authorizer, principal: str, tenant: str, permission: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        authorizer.check(principal, tenant, permission)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "role",
    ["admin", "roles/admin", "tenants/acme/roles/", "tenants/acme/roles/Admin", "roles/*"],
)
def test_malformed_roles_are_refused(authorizer: Authorizer, role: str) -> None:
    with pytest.raises(ValidationError) as caught:
        authorizer.grant_permission(role, "users:read")
    assert caught.value.reason == AuthErrorReason.INVALID_RESOURCE_NAME.value
    assert caught.value.metadata == {"field": "role"}


def test_check_many_answers_in_order(authorizer: Authorizer) -> None:
    assert authorizer.check_many(
        [(BOB, ACME, "users:read"), (BOB, ACME, "users:create"), (GINA, ACME, "users:read")]
    ) == [True, False, False]


# A large store


def test_decisions_hold_among_a_hundred_thousand_lines() -> None:
    lines = [
        line for number in range(4000) for line in default_tenant_lines(f"tenants/t{number:04}")
    ]
    lines += [
        PolicyLine(
            Section.ASSIGNMENT,
            (
                f"tenants/t{number % 4000:04}/users/u{number}",
                f"tenants/t{number % 4000:04}/roles/viewer",
                f"tenants/t{number % 4000:04}",
            ),
        )
        for number in range(70_000)
    ]
    authorizer = Authorizer(lines)
    assert len(authorizer) == len(lines) >= 100_000
    assert authorizer.check("tenants/t0007/users/u8007", "tenants/t0007", "invoices:read")
    assert not authorizer.check("tenants/t0007/users/u8007", "tenants/t0007", "invoices:write")
    assert not authorizer.check("tenants/t0007/users/u8007", "tenants/t0008", "invoices:read")


def test_the_role_hierarchy_stops_where_casbins_does() -> None:
    chain = [f"{ACME}/roles/level-{level:02}" for level in range(MAX_HIERARCHY_LEVEL + 2)]
    lines = [PolicyLine(Section.ASSIGNMENT, (ALICE, chain[0], ACME))]
    lines += [
        PolicyLine(Section.ASSIGNMENT, (lower, upper, ACME))
        for lower, upper in itertools.pairwise(chain)
    ]
    lines += [
        PolicyLine(Section.GRANT, (role, ACME, "r" + role.rsplit("-", 1)[1], "read"))
        for role in chain
    ]
    authorizer, enforcer = Authorizer(lines), casbin_enforcer(lines)
    decisions = [authorizer.check(ALICE, ACME, f"r{level:02}:read") for level in range(len(chain))]
    assert decisions == [
        enforcer.enforce(ALICE, ACME, f"r{level:02}", "read") for level in range(len(chain))
    ]
    assert decisions.count(True) == MAX_HIERARCHY_LEVEL - 1


# Properties

_TENANTS = ("tenants/ta", "tenants/tb")
_PRINCIPALS = (
    "tenants/ta/users/u1",
    "tenants/ta/serviceAccounts/svc",
    "tenants/tb/users/u1",
    "tenants/tb/users/u2",
)
_ROLES = (
    "tenants/ta/roles/admin",
    "tenants/ta/roles/read",
    "tenants/tb/roles/admin",
    "tenants/tb/roles/read",
    "roles/platform-admin",
)
_DOMAINS = (*_TENANTS, "tenants/tc", "*")
_RESOURCES = ("users", "invoices", "*")
_ACTIONS = ("read", "write", "*")


def _tenant_of(principal: str) -> str:
    return "/".join(principal.split("/")[:2])


def _home_domain(name: str) -> str:
    return "*" if name == "roles/platform-admin" else _tenant_of(name)


@st.composite
def _grant_lines(draw: st.DrawFn) -> PolicyLine:
    subject = draw(st.sampled_from(_ROLES + _ROLES + _PRINCIPALS))  # mostly roles
    # Mostly where the API would write it, sometimes anywhere: hostile stores too.
    domain = draw(st.one_of(st.just(_home_domain(subject)), st.sampled_from(_DOMAINS)))
    resource, action = draw(st.sampled_from(_RESOURCES)), draw(st.sampled_from(_ACTIONS))
    return PolicyLine(Section.GRANT, (subject, domain, resource, action))


@st.composite
def _assignment_lines(draw: st.DrawFn) -> PolicyLine:
    member = draw(st.sampled_from(_PRINCIPALS + _PRINCIPALS + _ROLES))  # mostly principals
    role = draw(st.sampled_from(_ROLES))
    domain = draw(st.one_of(st.just(_home_domain(role)), st.sampled_from(_DOMAINS)))
    return PolicyLine(Section.ASSIGNMENT, (member, role, domain))


_stores = st.lists(st.one_of(_grant_lines(), _assignment_lines()), min_size=5, max_size=60)


# Every request over the pools: each generated store is checked exhaustively.
_ALL_REQUESTS = tuple(itertools.product(_PRINCIPALS, _DOMAINS[:-1], _RESOURCES, _ACTIONS))


def _reference_reach(lines: list[PolicyLine], member: str, domain: str) -> set[str]:
    reached = {member}
    for _ in range(MAX_HIERARCHY_LEVEL - 1):
        reached |= {
            line.rule[1]
            for line in lines
            if line.section is Section.ASSIGNMENT
            and line.rule[2] == domain
            and line.rule[0] in reached
        }
    return reached


def _reference_allows(
    lines: list[PolicyLine], principal: str, tenant: str, resource: str, action: str
) -> bool:
    """The rules as the module docstring states them, read off a plain list."""
    platform_reach = _reference_reach(lines, principal, "*")
    if _tenant_of(principal) != tenant and "roles/platform-admin" not in platform_reach:
        return False
    tenant_reach = _reference_reach(lines, principal, tenant)
    return any(
        line.section is Section.GRANT
        and (
            (line.rule[1] == tenant and line.rule[0] in tenant_reach)
            or (line.rule[1] == "*" and line.rule[0] in platform_reach)
        )
        and line.rule[2] in ("*", resource)
        and line.rule[3] in ("*", action)
        for line in lines
    )


@given(lines=_stores)
@settings(max_examples=300, deadline=None)
def test_no_check_is_ever_allowed_outside_the_principals_tenant_unless_platform_admin(
    lines: list[PolicyLine],
) -> None:
    authorizer = Authorizer(lines)
    for principal, tenant, resource, action in _ALL_REQUESTS:
        if authorizer.check(principal, tenant, f"{resource}:{action}") and tenant != _tenant_of(
            principal
        ):
            assert authorizer.is_platform_admin(principal)


@given(lines=_stores)
@settings(max_examples=300, deadline=None)
def test_decisions_match_a_naive_reference_of_the_rules(
    lines: list[PolicyLine],
) -> None:
    authorizer = Authorizer(lines)
    for principal, tenant, resource, action in _ALL_REQUESTS:
        assert authorizer.check(principal, tenant, f"{resource}:{action}") == _reference_allows(
            lines, principal, tenant, resource, action
        )


@given(lines=_stores)
@settings(max_examples=150, deadline=None)
def test_decisions_are_casbins_plus_tenant_isolation(
    lines: list[PolicyLine],
) -> None:
    authorizer, enforcer = Authorizer(lines), casbin_enforcer(lines)
    role_manager = enforcer.get_role_manager()
    for principal, tenant, resource, action in _ALL_REQUESTS:
        isolated = tenant == _tenant_of(principal) or role_manager.has_link(
            principal, "roles/platform-admin", "*"
        )
        expected = isolated and enforcer.enforce(principal, tenant, resource, action)
        assert authorizer.check(principal, tenant, f"{resource}:{action}") == expected


@given(lines=_stores, removals=st.lists(st.integers(min_value=0, max_value=39), max_size=20))
@settings(max_examples=150, deadline=None)
def test_an_index_built_by_adds_and_removes_equals_one_built_at_once(
    lines: list[PolicyLine], removals: list[int]
) -> None:
    incremental = Authorizer()
    incremental.apply(PolicyChange(PolicyChangeKind.ADD, line) for line in lines)
    kept = list(lines)
    for position in removals:
        if kept:
            removed = kept.pop(position % len(kept))
            if removed not in kept:
                incremental.apply([PolicyChange(PolicyChangeKind.REMOVE, removed)])
    at_once = Authorizer(kept)
    assert set(incremental.lines()) == set(at_once.lines())
    assert len(incremental) == len(at_once) == len(set(kept))
