"""AccessState on its own: why a verified token is refused, and what it forgets when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mainmast.auth import AuthErrorReason
from mainmast_auth._access_state import AccessSnapshot, AccessState
from mainmast_auth._resource_names import PrincipalKind

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=15)
LEEWAY = timedelta(seconds=30)
TENANT = "tenants/acme"
ALICE = "tenants/acme/users/alice"
PAYMENTS = "tenants/acme/serviceAccounts/payments"


def _state() -> AccessState:
    return AccessState(token_lifetime=LIFETIME, leeway=LEEWAY)


def _refusal(
    state: AccessState,
    *,
    token_id: str = "jti-1",  # noqa: S107 -- a token id, not a secret
    subject: str = ALICE,
    issued_at: datetime = NOW,
) -> AuthErrorReason | None:
    kind = PrincipalKind.USER if "/users/" in subject else PrincipalKind.SERVICE_ACCOUNT
    return state.refusal(
        token_id=token_id,
        subject=subject,
        tenant=TENANT,
        issued_at=issued_at.timestamp(),
        kind=kind,
    )


def test_nothing_stands_against_a_token_of_an_empty_state() -> None:
    state = _state()
    assert _refusal(state) is None
    assert len(state) == 0


def test_a_revoked_jti_refuses_that_token_only() -> None:
    state = _state()
    state.revoke_token("jti-1", NOW + LIFETIME)
    assert _refusal(state) is AuthErrorReason.TOKEN_REVOKED
    assert _refusal(state, token_id="jti-2") is None


def test_a_subject_cutoff_refuses_tokens_issued_before_it_and_only_moves_on() -> None:
    state = _state()
    state.revoke_subject(ALICE, NOW)
    state.revoke_subject(ALICE, NOW - timedelta(hours=1))  # older: ignored
    assert _refusal(state, issued_at=NOW - timedelta(seconds=1)) is AuthErrorReason.TOKEN_REVOKED
    assert _refusal(state, issued_at=NOW) is None
    assert _refusal(state, subject="tenants/acme/users/bob", issued_at=NOW - LIFETIME) is None


@pytest.mark.parametrize(
    ("disabled", "subject", "reason"),
    [
        (TENANT, ALICE, AuthErrorReason.TENANT_DISABLED),
        (TENANT, PAYMENTS, AuthErrorReason.TENANT_DISABLED),
        (ALICE, ALICE, AuthErrorReason.USER_DISABLED),
        (PAYMENTS, PAYMENTS, AuthErrorReason.SERVICE_ACCOUNT_DISABLED),
    ],
)
def test_a_disabled_tenant_or_principal_refuses_its_tokens(
    disabled: str, subject: str, reason: AuthErrorReason
) -> None:
    state = _state()
    state.disable([disabled])
    assert _refusal(state, subject=subject) is reason


def test_a_revocation_is_named_before_a_disabled_principal() -> None:
    state = _state()
    state.disable([ALICE])
    state.revoke_token("jti-1", NOW + LIFETIME)
    assert _refusal(state) is AuthErrorReason.TOKEN_REVOKED


def test_pruning_forgets_what_no_token_could_pass_any_more_and_keeps_the_rest() -> None:
    state = _state()
    state.revoke_token("expired", NOW - LEEWAY - timedelta(seconds=1))
    state.revoke_token("in-leeway", NOW - LEEWAY + timedelta(seconds=1))
    state.revoke_token("live", NOW + LIFETIME)
    state.revoke_subject("tenants/acme/users/old", NOW - LIFETIME - LEEWAY - timedelta(seconds=1))
    state.revoke_subject(ALICE, NOW - LIFETIME)
    state.disable([PAYMENTS])
    assert state.prune(NOW) == 2
    assert len(state) == 4
    assert _refusal(state, token_id="expired") is None
    assert _refusal(state, token_id="in-leeway") is AuthErrorReason.TOKEN_REVOKED
    assert _refusal(state, token_id="live") is AuthErrorReason.TOKEN_REVOKED
    assert _refusal(state, subject=PAYMENTS) is AuthErrorReason.SERVICE_ACCOUNT_DISABLED


def test_pruning_sweeps_at_most_once_a_minute() -> None:
    state = _state()
    state.prune(NOW)
    state.revoke_token("jti-1", NOW)
    later = NOW + LEEWAY + timedelta(seconds=1)
    assert state.prune(later) == 0  # within a minute of the last sweep
    assert state.prune(NOW + timedelta(minutes=1)) == 1
    assert len(state) == 0


def test_replace_holds_exactly_the_snapshot_less_what_has_lapsed() -> None:
    state = _state()
    state.revoke_token("jti-gone", NOW + LIFETIME)
    state.disable([PAYMENTS])
    state.replace(
        AccessSnapshot(
            version=7,
            revoked_token_ids={"jti-1": NOW + LIFETIME, "jti-lapsed": NOW - timedelta(hours=1)},
            subject_cutoffs={ALICE: NOW},
            disabled=frozenset({TENANT}),
        ),
        now=NOW,
    )
    assert len(state) == 3
    assert _refusal(state, token_id="jti-gone", subject=PAYMENTS) is AuthErrorReason.TENANT_DISABLED
    assert _refusal(state, token_id="jti-1") is AuthErrorReason.TOKEN_REVOKED


def test_a_lifetime_must_be_positive_and_the_leeway_not_negative() -> None:
    with pytest.raises(ValueError, match="positive"):
        AccessState(token_lifetime=timedelta(0), leeway=LEEWAY)
    with pytest.raises(ValueError, match="negative"):
        AccessState(token_lifetime=LIFETIME, leeway=timedelta(seconds=-1))
