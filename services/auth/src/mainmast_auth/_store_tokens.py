"""Refresh-token families and revocations in the database.

Redeeming a refresh token happens in the caller's transaction: the presented token's row
is read with `SELECT ... FOR UPDATE` (PostgreSQL), the core's `redeem` decides, and the
spent mark is written only if the row is still unspent (`WHERE rotate_time IS NULL`), so
of two concurrent redemptions of one token exactly one rotates; the other is what it
looks like, a reuse, and revokes the family. On SQLite the database's single writer
serialises them the same way.

A ReuseDetected result must be committed before its error is raised: the revoked family
is the point. Revocations of access tokens are kept by jti until the token would have
expired, and per subject as a not-before time that only moves forward; each bumps the
access-state version, so every replica reloads what it holds in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ._models import (
    RefreshTokenFamilyRow,
    RefreshTokenRow,
    RevokedTokenRow,
    SubjectRevocationRow,
)
from ._refresh_tokens import (
    FamilyRevokeReason,
    IssuedRefreshToken,
    RefreshTokenFamily,
    RefreshTokenLifetimes,
    RefreshTokenRecord,
    ReuseDetected,
    Rotation,
    hash_refresh_token,
    redeem,
)
from ._store_access_state import bump_access_state_version

# Conversions between rows and the core's dataclasses


def _family(row: RefreshTokenFamilyRow) -> RefreshTokenFamily:
    return RefreshTokenFamily(
        family_id=row.family_id,
        subject=row.subject,
        tenant=row.tenant,
        scopes=tuple(row.scopes.split()),
        create_time=row.create_time,
        expire_time=row.expire_time,
        revoke_time=row.revoke_time,
        revoke_reason=None if row.revoke_reason is None else FamilyRevokeReason(row.revoke_reason),
    )


def _record(row: RefreshTokenRow) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        token_hash=row.token_hash,
        family_id=row.family_id,
        create_time=row.create_time,
        expire_time=row.expire_time,
        rotate_time=row.rotate_time,
        successor_hash=row.successor_hash,
    )


def _record_row(record: RefreshTokenRecord) -> RefreshTokenRow:
    return RefreshTokenRow(
        token_hash=record.token_hash,
        family_id=record.family_id,
        create_time=record.create_time,
        expire_time=record.expire_time,
        rotate_time=record.rotate_time,
        successor_hash=record.successor_hash,
    )


# Refresh-token families


async def save_refresh_family(session: AsyncSession, issued: IssuedRefreshToken) -> None:
    """Store a new family (`start_family`'s) and its first token."""
    family = issued.family
    session.add(
        RefreshTokenFamilyRow(
            family_id=family.family_id,
            subject=family.subject,
            tenant=family.tenant,
            scopes=" ".join(family.scopes),
            create_time=family.create_time,
            expire_time=family.expire_time,
            revoke_time=family.revoke_time,
            revoke_reason=None if family.revoke_reason is None else family.revoke_reason.value,
        )
    )
    # The family first: the token row's foreign key needs it.
    await session.flush()
    session.add(_record_row(issued.record))
    await session.flush()


async def redeem_refresh_token(
    session: AsyncSession, token: str, *, now: datetime, lifetimes: RefreshTokenLifetimes
) -> Rotation | ReuseDetected:
    """Redeem `token` in the session's transaction and write the outcome.

    Rotation: the token is marked spent and its successor stored. ReuseDetected: the
    family is revoked; commit, then raise `result.error()`. Unknown, lapsed or revoked:
    UnauthenticatedError(REFRESH_TOKEN_INVALID), nothing written.
    """
    token_hash = hash_refresh_token(token)
    record_row = (
        await session.execute(
            select(RefreshTokenRow)
            .where(RefreshTokenRow.token_hash == token_hash)
            .with_for_update()
        )
    ).scalar_one_or_none()
    family_row = None
    if record_row is not None:
        family_row = await session.get(
            RefreshTokenFamilyRow, record_row.family_id, with_for_update=True
        )
    outcome = redeem(
        token,
        record=None if record_row is None else _record(record_row),
        family=None if family_row is None else _family(family_row),
        now=now,
        lifetimes=lifetimes,
    )
    if isinstance(outcome, Rotation):
        spent = await session.execute(
            update(RefreshTokenRow)
            .where(RefreshTokenRow.token_hash == token_hash, RefreshTokenRow.rotate_time.is_(None))
            .values(
                rotate_time=outcome.spent.rotate_time, successor_hash=outcome.spent.successor_hash
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(spent, "rowcount", 0) == 1:
            session.add(_record_row(outcome.successor.record))
            await session.flush()
            return outcome
        # Spent by a concurrent redemption after we read it: the same token in two hands.
        reuse = ReuseDetected(
            outcome.successor.family.revoked(at=now, reason=FamilyRevokeReason.REUSE_DETECTED)
        )
    else:
        reuse = outcome
    await _write_family_revocation(session, reuse.family)
    return reuse


async def _write_family_revocation(session: AsyncSession, family: RefreshTokenFamily) -> None:
    if family.revoke_time is None or family.revoke_reason is None:
        raise ValueError("the family is not revoked")
    await session.execute(
        update(RefreshTokenFamilyRow)
        .where(
            RefreshTokenFamilyRow.family_id == family.family_id,
            RefreshTokenFamilyRow.revoke_time.is_(None),
        )
        .values(revoke_time=family.revoke_time, revoke_reason=family.revoke_reason.value)
        .execution_options(synchronize_session=False)
    )


async def find_refresh_family(session: AsyncSession, token: str) -> RefreshTokenFamily | None:
    """The family of a refresh token (spent or not), or None if the token is unknown."""
    statement = (
        select(RefreshTokenFamilyRow)
        .join(RefreshTokenRow, RefreshTokenRow.family_id == RefreshTokenFamilyRow.family_id)
        .where(RefreshTokenRow.token_hash == hash_refresh_token(token))
    )
    row = (await session.execute(statement)).scalar_one_or_none()
    return None if row is None else _family(row)


async def revoke_refresh_family(
    session: AsyncSession, family_id: str, *, now: datetime, reason: FamilyRevokeReason
) -> bool:
    """Revoke the family; whether it was live (False: unknown or revoked already)."""
    result = await session.execute(
        update(RefreshTokenFamilyRow)
        .where(
            RefreshTokenFamilyRow.family_id == family_id,
            RefreshTokenFamilyRow.revoke_time.is_(None),
        )
        .values(revoke_time=now, revoke_reason=reason.value)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def revoke_refresh_families(
    session: AsyncSession,
    *,
    subject: str | None = None,
    tenant: str | None = None,
    now: datetime,
    reason: FamilyRevokeReason,
) -> int:
    """Revoke every live family of `subject`, or of every principal of `tenant`; how many."""
    if (subject is None) == (tenant is None):
        raise ValueError("name exactly one of subject and tenant")
    statement = update(RefreshTokenFamilyRow).where(RefreshTokenFamilyRow.revoke_time.is_(None))
    if subject is not None:
        statement = statement.where(RefreshTokenFamilyRow.subject == subject)
    else:
        statement = statement.where(RefreshTokenFamilyRow.tenant == tenant)
    result = await session.execute(
        statement.values(revoke_time=now, revoke_reason=reason.value).execution_options(
            synchronize_session=False
        )
    )
    return int(getattr(result, "rowcount", 0))


# Access-token revocations


async def revoke_token_ids(
    session: AsyncSession, revoked: Iterable[tuple[str, datetime]], *, now: datetime
) -> None:
    """Revoke access tokens by (jti, expire_time); revoking one twice changes nothing."""
    values = [
        {"token_id": token_id, "revoke_time": now, "expire_time": expire_time}
        for token_id, expire_time in revoked
    ]
    if not values:
        return
    await bump_access_state_version(session)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(RevokedTokenRow).values(values).on_conflict_do_nothing())


async def revoke_subject(session: AsyncSession, subject: str, *, not_before: datetime) -> datetime:
    """Revoke every token of `subject` issued before `not_before`; the not-before now in force.

    The time only moves forward: an older not-before leaves a newer one in place.
    """
    await bump_access_state_version(session)
    row = await session.get(SubjectRevocationRow, subject, with_for_update=True)
    if row is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await session.execute(
            insert(SubjectRevocationRow)
            .values(subject=subject, not_before=not_before)
            .on_conflict_do_nothing()
        )
        row = await session.get(SubjectRevocationRow, subject, populate_existing=True)
        if row is None:  # pragma: no cover - inserted or present, in this transaction
            raise RuntimeError(f"subject revocation of {subject} vanished")
    if row.not_before < not_before:
        row.not_before = not_before
        await session.flush()
    return row.not_before


@dataclass(frozen=True, slots=True)
class Purged:
    """How many rows `purge_expired` deleted."""

    revoked_tokens: int
    """Revocations of access tokens that have expired anyway."""
    refresh_families: int
    """Refresh-token families past their absolute expiry (their tokens with them)."""


async def purge_expired(session: AsyncSession, *, now: datetime) -> Purged:
    """Delete what can no longer matter at `now`: expired revocations and families."""
    revoked = await session.execute(
        delete(RevokedTokenRow).where(RevokedTokenRow.expire_time <= now)
    )
    expired_families = select(RefreshTokenFamilyRow.family_id).where(
        RefreshTokenFamilyRow.expire_time <= now
    )
    # Tokens first: the foreign key's cascade is not relied on for a bulk delete.
    await session.execute(
        delete(RefreshTokenRow).where(RefreshTokenRow.family_id.in_(expired_families))
    )
    families = await session.execute(
        delete(RefreshTokenFamilyRow).where(RefreshTokenFamilyRow.expire_time <= now)
    )
    return Purged(
        revoked_tokens=int(getattr(revoked, "rowcount", 0)),
        refresh_families=int(getattr(families, "rowcount", 0)),
    )
