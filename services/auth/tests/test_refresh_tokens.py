"""Refresh-token families: rotation on every use, and reuse of a spent token revokes the family.

The decisions are pure; `_Tables` below plays the two database tables (tokens by hash,
families by id) exactly as a repository would: load by hash, decide, write what comes back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mainmast.auth import AuthErrorReason
from mainmast.errors import UnauthenticatedError
from mainmast_auth._refresh_tokens import (
    REFRESH_TOKEN_PREFIX,
    FamilyRevokeReason,
    IssuedRefreshToken,
    RefreshTokenFamily,
    RefreshTokenLifetimes,
    RefreshTokenRecord,
    ReuseDetected,
    Rotation,
    hash_refresh_token,
    redeem,
    start_family,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LIFETIMES = RefreshTokenLifetimes(idle=timedelta(days=14), absolute=timedelta(days=30))


@dataclass
class _Tables:
    """The families and tokens tables, as rows keyed by primary key."""

    families: dict[str, RefreshTokenFamily] = field(default_factory=dict)
    tokens: dict[str, RefreshTokenRecord] = field(default_factory=dict)

    def login(self, now: datetime = T0) -> str:
        issued = start_family(
            subject="tenants/acme/users/alice",
            tenant="tenants/acme",
            scopes=["orders:read"],
            now=now,
            lifetimes=LIFETIMES,
        )
        self._store(issued)
        return issued.token

    def refresh(self, token: str, now: datetime = T0) -> str:
        """One redemption as the service does it; the new token, or UnauthenticatedError."""
        record = self.tokens.get(hash_refresh_token(token))
        family = self.families.get(record.family_id) if record else None
        outcome = redeem(token, record=record, family=family, now=now, lifetimes=LIFETIMES)
        if isinstance(outcome, ReuseDetected):
            self.families[outcome.family.family_id] = outcome.family
            raise outcome.error()
        self.tokens[outcome.spent.token_hash] = outcome.spent
        self._store(outcome.successor)
        return outcome.successor.token

    def _store(self, issued: IssuedRefreshToken) -> None:
        self.families[issued.family.family_id] = issued.family
        self.tokens[issued.record.token_hash] = issued.record


def _reason(tables: _Tables, token: str, now: datetime = T0) -> str:
    with pytest.raises(UnauthenticatedError) as caught:
        tables.refresh(token, now)
    return caught.value.reason


def test_a_login_starts_a_family_with_an_opaque_high_entropy_token() -> None:
    issued = start_family(
        subject="tenants/acme/users/alice", tenant="tenants/acme", now=T0, lifetimes=LIFETIMES
    )
    assert issued.token.startswith(REFRESH_TOKEN_PREFIX)
    assert len(issued.token) >= len(REFRESH_TOKEN_PREFIX) + 43  # 256 random bits
    assert issued.record.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token not in repr(issued)
    assert issued.record.expire_time == T0 + timedelta(days=14)
    assert issued.family.expire_time == T0 + timedelta(days=30)
    assert issued.family.revoke_time is None
    other = start_family(subject="s", tenant="t", now=T0, lifetimes=LIFETIMES)
    assert other.token != issued.token
    assert other.family.family_id != issued.family.family_id


def test_each_refresh_spends_the_token_and_hands_out_its_successor() -> None:
    tables = _Tables()
    first = tables.login()
    second = tables.refresh(first, T0 + timedelta(hours=1))
    third = tables.refresh(second, T0 + timedelta(hours=2))
    assert len({first, second, third}) == 3
    spent = tables.tokens[hash_refresh_token(first)]
    assert spent.rotate_time == T0 + timedelta(hours=1)
    assert spent.successor_hash == hash_refresh_token(second)
    assert len(tables.families) == 1
    assert tables.tokens[hash_refresh_token(third)].rotate_time is None


def test_a_spent_token_presented_again_revokes_the_family_for_everyone() -> None:
    tables = _Tables()
    stolen = tables.login()
    legitimate = tables.refresh(stolen, T0 + timedelta(hours=1))
    # The thief replays the token the client already rotated away.
    assert _reason(tables, stolen, T0 + timedelta(hours=2)) == (
        AuthErrorReason.REFRESH_TOKEN_REUSED.value
    )
    (family,) = tables.families.values()
    assert family.revoke_time == T0 + timedelta(hours=2)
    assert family.revoke_reason is FamilyRevokeReason.REUSE_DETECTED
    # The legitimate client's newest token died with the family.
    assert _reason(tables, legitimate, T0 + timedelta(hours=3)) == (
        AuthErrorReason.REFRESH_TOKEN_INVALID.value
    )
    # The replay again: nothing left to revoke.
    assert _reason(tables, stolen) == AuthErrorReason.REFRESH_TOKEN_INVALID.value


def test_other_families_of_the_same_user_are_untouched_by_a_reuse() -> None:
    tables = _Tables()
    laptop, phone = tables.login(), tables.login()
    tables.refresh(laptop)
    _reason(tables, laptop)
    tables.refresh(phone)


def test_an_unknown_token_is_invalid() -> None:
    tables = _Tables()
    tables.login()
    assert _reason(tables, REFRESH_TOKEN_PREFIX + "x" * 43) == (
        AuthErrorReason.REFRESH_TOKEN_INVALID.value
    )
    assert _reason(tables, "") == AuthErrorReason.REFRESH_TOKEN_INVALID.value


def test_a_token_unused_for_the_idle_lifetime_lapses() -> None:
    tables = _Tables()
    token = tables.login()
    assert _reason(tables, token, T0 + timedelta(days=14)) == (
        AuthErrorReason.REFRESH_TOKEN_INVALID.value
    )


def test_rotation_never_extends_the_family_past_its_absolute_lifetime() -> None:
    tables = _Tables()
    token = tables.login()
    for day in (10, 20, 29):
        token = tables.refresh(token, T0 + timedelta(days=day))
    assert tables.tokens[hash_refresh_token(token)].expire_time == T0 + timedelta(days=30)
    assert _reason(tables, token, T0 + timedelta(days=30)) == (
        AuthErrorReason.REFRESH_TOKEN_INVALID.value
    )


def test_a_revoked_family_refreshes_no_more() -> None:
    tables = _Tables()
    token = tables.login()
    (family,) = tables.families.values()
    revoked = family.revoked(at=T0, reason=FamilyRevokeReason.PASSWORD_CHANGED)
    tables.families[family.family_id] = revoked
    assert _reason(tables, token) == AuthErrorReason.REFRESH_TOKEN_INVALID.value
    # A second revocation keeps the first one's time and reason.
    again = revoked.revoked(at=T0 + timedelta(days=1), reason=FamilyRevokeReason.REVOKED)
    assert again is revoked


def test_rows_that_do_not_belong_together_are_invalid() -> None:
    first = start_family(subject="s", tenant="t", now=T0, lifetimes=LIFETIMES)
    second = start_family(subject="s", tenant="t", now=T0, lifetimes=LIFETIMES)
    for record, family, token in (
        (first.record, second.family, first.token),
        (first.record, first.family, second.token),
        (None, first.family, first.token),
        (first.record, None, first.token),
    ):
        with pytest.raises(UnauthenticatedError) as caught:
            redeem(token, record=record, family=family, now=T0, lifetimes=LIFETIMES)
        assert caught.value.reason == AuthErrorReason.REFRESH_TOKEN_INVALID.value


def test_lifetimes_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="idle <= absolute"):
        RefreshTokenLifetimes(idle=timedelta(days=31), absolute=timedelta(days=30))
    with pytest.raises(ValueError, match="idle <= absolute"):
        RefreshTokenLifetimes(idle=timedelta(0))


@given(presentations=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=25))
@settings(max_examples=200, deadline=None)
def test_a_family_never_has_two_live_tokens_and_any_reuse_ends_it(
    presentations: list[int],
) -> None:
    """Present tokens of one family in any order: the properties of rotation hold throughout."""
    tables = _Tables()
    handed_out = [tables.login()]
    reused = False
    for step, choice in enumerate(presentations):
        token = handed_out[choice % len(handed_out)]
        now = T0 + timedelta(minutes=step)
        was_spent = tables.tokens[hash_refresh_token(token)].rotate_time is not None
        try:
            handed_out.append(tables.refresh(token, now))
            failure = None
        except UnauthenticatedError as error:
            failure = error.reason
        if reused:
            assert failure == AuthErrorReason.REFRESH_TOKEN_INVALID.value
        elif was_spent:
            assert failure == AuthErrorReason.REFRESH_TOKEN_REUSED.value
            reused = True
        else:
            assert failure is None
        live = [
            record for record in tables.tokens.values() if record.rotate_time is None and not reused
        ]
        assert len(live) == (0 if reused else 1)
    (family,) = tables.families.values()
    assert (family.revoke_time is not None) == reused


def test_outcomes_are_plain_rows() -> None:
    issued = start_family(subject="s", tenant="t", now=T0, lifetimes=LIFETIMES)
    outcome = redeem(
        issued.token, record=issued.record, family=issued.family, now=T0, lifetimes=LIFETIMES
    )
    assert isinstance(outcome, Rotation)
    assert outcome.successor.family is issued.family
    replay = redeem(
        issued.token, record=outcome.spent, family=issued.family, now=T0, lifetimes=LIFETIMES
    )
    assert isinstance(replay, ReuseDetected)
    assert replay.error().reason == AuthErrorReason.REFRESH_TOKEN_REUSED.value
