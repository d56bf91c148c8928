"""Opaque refresh tokens in families: rotated on every use, a reused one revokes its family.

A login starts a family and hands out its first refresh token. Redeeming a token spends
it and issues its successor in the same family. A spent token presented again means two
parties hold the family's tokens (one of them a thief, and there is no telling which):
the whole family is revoked, and both must log in again (OAuth 2.0 Security BCP, RFC 9700
section 4.14.2).

Everything here is pure: the decisions take rows and return rows. The two dataclasses
`RefreshTokenFamily` and `RefreshTokenRecord` are the rows of two tables (families, and
tokens by hash); the caller loads the presented token's rows, calls `redeem` inside one
transaction that locks the token row (`SELECT ... FOR UPDATE` on PostgreSQL), writes what
it returns, and commits, so two concurrent redemptions of one token cannot both win.

Tokens are 256 random bits, stored only as their SHA-256: with that much entropy a slow
password hash adds nothing, and the hash is the table's lookup key.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import UnauthenticatedError

REFRESH_TOKEN_PREFIX: Final = "mmrt_"  # noqa: S105 -- a prefix, not a secret
"""Every refresh token starts with this, so secret scanners and logs can recognise one."""

_TOKEN_BYTES: Final = 32


class FamilyRevokeReason(enum.StrEnum):
    """Why a refresh-token family was revoked (stored with the family)."""

    REUSE_DETECTED = "reuse_detected"
    """A spent token of the family was presented again."""
    REVOKED = "revoked"
    """RevokeTokens named the family's token or its subject."""
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 -- a reason, not a password
    """The user's password was replaced."""
    PRINCIPAL_DISABLED = "principal_disabled"
    """The user, service account or tenant was disabled."""


@dataclass(frozen=True, slots=True)
class RefreshTokenLifetimes:
    """How long refresh tokens live."""

    idle: timedelta = timedelta(days=14)
    """Each token's life: a family unused this long lapses."""
    absolute: timedelta = timedelta(days=30)
    """The family's life from its login; rotation never extends it."""

    def __post_init__(self) -> None:
        if not timedelta(0) < self.idle <= self.absolute:
            raise ValueError("refresh token lifetimes need 0 < idle <= absolute")


@dataclass(frozen=True, slots=True)
class RefreshTokenFamily:
    """The tokens descended from one login (a row of the families table)."""

    family_id: str
    """Primary key, a UUID."""
    subject: str
    """Resource name of the principal the family belongs to."""
    tenant: str
    """Resource name of the principal's tenant."""
    scopes: tuple[str, ...]
    """The scopes granted at login; refreshed access tokens get the same."""
    create_time: datetime
    """When the login happened."""
    expire_time: datetime
    """When every token of the family lapses, however recently rotated."""
    revoke_time: datetime | None = None
    """When the family was revoked; None while it is live."""
    revoke_reason: FamilyRevokeReason | None = None
    """Why the family was revoked."""

    def revoked(self, *, at: datetime, reason: FamilyRevokeReason) -> RefreshTokenFamily:
        """This family revoked at `at`; a family already revoked keeps its first revocation."""
        if self.revoke_time is not None:
            return self
        return replace(self, revoke_time=at, revoke_reason=reason)


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    """One refresh token, by hash (a row of the tokens table)."""

    token_hash: str
    """Primary key: SHA-256 of the token, hex."""
    family_id: str
    """The family it belongs to."""
    create_time: datetime
    """When it was issued."""
    expire_time: datetime
    """When it lapses unused."""
    rotate_time: datetime | None = None
    """When it was redeemed (spent); None while unused."""
    successor_hash: str | None = None
    """Hash of the token issued in exchange for it."""


@dataclass(frozen=True, slots=True)
class IssuedRefreshToken:
    """A new refresh token: the secret for the client and the rows to store."""

    token: str = field(repr=False)
    """The opaque token; shown to the client once and never stored."""
    record: RefreshTokenRecord
    """Its row."""
    family: RefreshTokenFamily
    """Its family's row."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """A successful redemption: write `spent` and `successor`, then issue an access token."""

    spent: RefreshTokenRecord
    """The presented token's row, now marked spent."""
    successor: IssuedRefreshToken
    """The new refresh token to hand back."""


@dataclass(frozen=True, slots=True)
class ReuseDetected:
    """A spent token came back: write the revoked `family`, then raise `error()`."""

    family: RefreshTokenFamily
    """The family, now revoked."""

    def error(self) -> UnauthenticatedError:
        """The error to answer the caller with (REFRESH_TOKEN_REUSED)."""
        return UnauthenticatedError(
            "The refresh token was already used; every token of its login is now revoked.",
            reason=AuthErrorReason.REFRESH_TOKEN_REUSED.value,
            domain=AUTH_ERROR_DOMAIN,
        )


def hash_refresh_token(token: str) -> str:
    """The SHA-256 of a refresh token, hex: the key its row is stored and found under."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(
    family_id: str, *, now: datetime, expire_time: datetime
) -> tuple[str, RefreshTokenRecord]:
    token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    record = RefreshTokenRecord(
        token_hash=hash_refresh_token(token),
        family_id=family_id,
        create_time=now,
        expire_time=expire_time,
    )
    return token, record


def start_family(
    *,
    subject: str,
    tenant: str,
    scopes: Sequence[str] = (),
    now: datetime,
    lifetimes: RefreshTokenLifetimes,
) -> IssuedRefreshToken:
    """A new family for a login, with its first refresh token."""
    family = RefreshTokenFamily(
        family_id=str(uuid.uuid4()),
        subject=subject,
        tenant=tenant,
        scopes=tuple(scopes),
        create_time=now,
        expire_time=now + lifetimes.absolute,
    )
    token, record = _new_token(
        family.family_id, now=now, expire_time=min(now + lifetimes.idle, family.expire_time)
    )
    return IssuedRefreshToken(token=token, record=record, family=family)


def _invalid() -> UnauthenticatedError:
    return UnauthenticatedError(
        "The refresh token is unknown, expired or revoked.",
        reason=AuthErrorReason.REFRESH_TOKEN_INVALID.value,
        domain=AUTH_ERROR_DOMAIN,
    )


def redeem(
    token: str,
    *,
    record: RefreshTokenRecord | None,
    family: RefreshTokenFamily | None,
    now: datetime,
    lifetimes: RefreshTokenLifetimes,
) -> Rotation | ReuseDetected:
    """Decide a refresh: rotate, or detect reuse.

    `record` and `family` are the rows found under `hash_refresh_token(token)` (None when
    there are none). Raises UnauthenticatedError(REFRESH_TOKEN_INVALID) when there is
    nothing to write: unknown token, revoked family, lapsed token or family.
    """
    if (
        record is None
        or family is None
        or record.family_id != family.family_id
        or not hmac.compare_digest(record.token_hash, hash_refresh_token(token))
    ):
        raise _invalid()
    if family.revoke_time is not None:
        raise _invalid()
    if record.rotate_time is not None:
        # Reuse is reported even after the spent token lapsed: it still shows that the
        # family's tokens are in two hands.
        return ReuseDetected(family.revoked(at=now, reason=FamilyRevokeReason.REUSE_DETECTED))
    if record.expire_time <= now or family.expire_time <= now:
        raise _invalid()
    successor_token, successor = _new_token(
        family.family_id, now=now, expire_time=min(now + lifetimes.idle, family.expire_time)
    )
    spent = replace(record, rotate_time=now, successor_hash=successor.token_hash)
    return Rotation(
        spent=spent,
        successor=IssuedRefreshToken(token=successor_token, record=successor, family=family),
    )
