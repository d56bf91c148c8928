"""Signing keys in the database, their private keys sealed by `PrivateKeyCipher`.

The table holds one active key (`active_slot = 1`, unique) and the retired keys whose
tokens may still be live. `save_key_ring` writes a ring the service built (a first key, or
a rotation): keys it retired first, then the new active key, so the unique slot is free
when the new key takes it. Two replicas rotating at once cannot both succeed: the second
gets ConflictError and reloads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.errors import ConflictError

from ._key_encryption import PrivateKeyCipher
from ._key_ring import KeyRing
from ._keys import SigningAlgorithm, SigningKey
from ._models import SigningKeyRow
from ._store_common import is_unique_violation

ACTIVE_SLOT: Final = 1
"""`active_slot` of the active key (retired keys hold NULL)."""


def _open(row: SigningKeyRow, cipher: PrivateKeyCipher) -> SigningKey:
    return cipher.open(
        row.sealed_private_key,
        key_id=row.key_id,
        algorithm=SigningAlgorithm(row.algorithm),
        create_time=row.create_time,
        retire_time=row.retire_time,
        expire_time=row.expire_time,
    )


async def load_key_ring(
    session: AsyncSession, cipher: PrivateKeyCipher, *, now: datetime, lock: bool = False
) -> KeyRing | None:
    """The stored key ring at `now` (retired keys past their expiry left out); None if no key.

    Rows sealed under a previous encryption key are re-sealed under the current one as
    they are read (written when the caller commits). `lock` holds the active key's row
    until the transaction ends, for a rotation on PostgreSQL. A row that does not open
    raises KeyDecryptionError: a wrong encryption key must stop the service, not make it
    generate a new key.
    """
    active_statement = select(SigningKeyRow).where(SigningKeyRow.active_slot == ACTIVE_SLOT)
    if lock:
        active_statement = active_statement.with_for_update()
    active_row = (await session.execute(active_statement)).scalar_one_or_none()
    if active_row is None:
        return None
    retired_rows = (
        await session.execute(
            select(SigningKeyRow)
            .where(SigningKeyRow.active_slot.is_(None), SigningKeyRow.expire_time > now)
            .order_by(SigningKeyRow.retire_time.desc(), SigningKeyRow.key_id)
        )
    ).scalars()
    rows = [active_row, *retired_rows]
    keys = [_open(row, cipher) for row in rows]
    for row, key in zip(rows, keys, strict=True):
        if cipher.needs_resealing(row.sealed_private_key):
            row.sealed_private_key = cipher.seal(key)
    return KeyRing(keys[0], tuple(keys[1:]))


async def save_key_ring(session: AsyncSession, ring: KeyRing, cipher: PrivateKeyCipher) -> None:
    """Store `ring`: retire the keys it retired, add the keys it adds (sealed).

    ConflictError if another transaction stored a different active key meanwhile.
    """
    key_ids = [ring.active.key_id, *(key.key_id for key in ring.retired)]
    existing = {
        row.key_id: row
        for row in (
            await session.execute(select(SigningKeyRow).where(SigningKeyRow.key_id.in_(key_ids)))
        ).scalars()
    }
    for key in ring.retired:
        row = existing.get(key.key_id)
        if row is None:
            session.add(_new_row(key, cipher, active=False))
        else:
            row.active_slot = None
            row.retire_time = key.retire_time
            row.expire_time = key.expire_time
    try:
        # Retirements first: the active slot must be free before the new key takes it.
        await session.flush()
        if ring.active.key_id not in existing:
            session.add(_new_row(ring.active, cipher, active=True))
            await session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise ConflictError(
                "Another replica changed the signing keys at the same time; reload them."
            ) from exc
        raise


def _new_row(key: SigningKey, cipher: PrivateKeyCipher, *, active: bool) -> SigningKeyRow:
    return SigningKeyRow(
        key_id=key.key_id,
        algorithm=key.algorithm.value,
        sealed_private_key=cipher.seal(key),
        create_time=key.create_time,
        retire_time=key.retire_time,
        expire_time=key.expire_time,
        active_slot=ACTIVE_SLOT if active else None,
    )


async def delete_expired_signing_keys(session: AsyncSession, *, now: datetime) -> int:
    """Delete retired keys whose last token has expired by `now`; how many were deleted."""
    result = await session.execute(
        delete(SigningKeyRow).where(
            SigningKeyRow.active_slot.is_(None), SigningKeyRow.expire_time <= now
        )
    )
    return int(getattr(result, "rowcount", 0))
