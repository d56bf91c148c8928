"""Quota counters in PostgreSQL, shared by every replica of the service.

One row per counter. A reservation is one transaction of upserts,
`INSERT ... ON CONFLICT DO UPDATE SET used = used + amount WHERE used + amount <= limit
RETURNING used`: PostgreSQL locks the row and checks the condition against its latest
version, so racing transactions queue on the row and none passes the limit. A charge that
does not fit returns no row, and the transaction rolls back all of its charges. Rows are
locked in the counters' sort order, so two transactions never wait for each other.

The table is made with `create_tables()` for now; an Alembic migration of the llm service
should take over (QUOTA_COUNTERS is the table it creates).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mainmast.db import DatabasePool
from mainmast.errors import UnavailableError

from ._quota_store import Counter, CounterAdjustment, CounterCharge, charge_fits

QUOTA_METADATA: Final = sa.MetaData()
"""The SQLAlchemy metadata of the quota tables (for create_all and, later, Alembic)."""

QUOTA_COUNTERS: Final = sa.Table(
    "llm_quota_counters",
    QUOTA_METADATA,
    sa.Column("tenant", sa.Text, primary_key=True),
    sa.Column("limit_kind", sa.Text, primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True, comment="epoch seconds"),
    sa.Column("window_end", sa.BigInteger, nullable=False, index=True, comment="epoch seconds"),
    sa.Column("used", sa.BigInteger, nullable=False),
    comment="Per-tenant rate limit and token budget counters of the llm service.",
)
"""One row per counter: a tenant's limit in one window."""

_EXPIRY_GRACE_SECONDS: Final = 60
"""How long a row outlives its window: late settlements and replicas' clock skew."""

_PURGE_INTERVAL_SECONDS: Final = 60.0


class _ChargesDoNotFit(Exception):  # noqa: N818 - control flow inside this module, not an error
    """Rolls back a reservation's transaction; carries the charges that did not fit."""

    def __init__(self, failed: tuple[int, ...]) -> None:
        super().__init__(failed)
        self.failed = failed


class PostgresQuotaStore:
    """Quota counters in a PostgreSQL table: one atomic upsert per counter and transaction."""

    def __init__(self, pool: DatabasePool, *, owns_pool: bool = False) -> None:
        """Count in `pool`'s database; `owns_pool` makes `close` close the pool."""
        if pool.backend != "postgresql":
            msg = f"PostgresQuotaStore needs a PostgreSQL database, not {pool.backend}"
            raise ValueError(msg)
        self._pool = pool
        self._owns_pool = owns_pool
        self._next_purge = 0.0

    @classmethod
    def from_url(cls, url: str) -> PostgresQuotaStore:
        """A store on its own DatabasePool (default options) to the database at `url`."""
        return cls(DatabasePool(url), owns_pool=True)

    def __repr__(self) -> str:
        return f"PostgresQuotaStore(pool={self._pool!r})"

    async def create_tables(self) -> None:
        """Create the counters table if it does not exist (until a migration does it)."""
        async with self._pool.connection() as connection:
            await connection.run_sync(QUOTA_METADATA.create_all)

    async def reserve(self, charges: Sequence[CounterCharge], *, now: float) -> tuple[int, ...]:
        """Add every charge, or none: the indexes of the charges that would pass their limit."""
        try:
            async with self._pool.connection() as connection:
                await _charge_all_or_raise(connection, charges)
        except _ChargesDoNotFit as rolled_back:
            return rolled_back.failed
        await self._purge_now_and_then(now)
        return ()

    async def adjust(self, adjustments: Sequence[CounterAdjustment], *, now: float) -> None:
        """Add each delta to its counter, flooring at zero; purged counters stay gone."""
        if not adjustments:
            return
        async with self._pool.connection() as connection:
            for adjustment in sorted(adjustments, key=lambda item: item.counter):
                await connection.execute(
                    sa.update(QUOTA_COUNTERS)
                    .where(*_is_row_of(adjustment.counter))
                    .values(used=sa.func.greatest(QUOTA_COUNTERS.c.used + adjustment.delta, 0))
                )

    async def used(self, counter: Counter) -> int:
        """The amount counted so far (0 for a counter without a row)."""
        async with self._pool.connection() as connection:
            value = await connection.scalar(
                sa.select(QUOTA_COUNTERS.c.used).where(*_is_row_of(counter))
            )
        return int(value) if value is not None else 0

    async def purge_expired(self, *, now: float) -> int:
        """Delete the rows of windows that ended over a minute before `now`; how many."""
        async with self._pool.connection() as connection:
            result = await connection.execute(
                sa.delete(QUOTA_COUNTERS).where(
                    QUOTA_COUNTERS.c.window_end < int(now) - _EXPIRY_GRACE_SECONDS
                )
            )
        return result.rowcount

    async def close(self) -> None:
        """Close the pool if this store made it."""
        if self._owns_pool:
            await self._pool.close()

    async def _purge_now_and_then(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + _PURGE_INTERVAL_SECONDS
        # The reservation is committed by now: a failed clean-up must not report it as
        # failed (the caller would never settle it). The next purge tries again.
        with contextlib.suppress(UnavailableError):
            await self.purge_expired(now=now)


async def _charge_all_or_raise(
    connection: AsyncConnection, charges: Sequence[CounterCharge]
) -> None:
    """Add every charge in the counters' order; raise _ChargesDoNotFit if any did not fit."""
    order = sorted(range(len(charges)), key=lambda index: charges[index].counter)
    failed = [index for index in order if not await _charge(connection, charges[index])]
    if failed:
        raise _ChargesDoNotFit(tuple(sorted(failed)))


async def _charge(connection: AsyncConnection, charge: CounterCharge) -> bool:
    """Add `charge` to its row (made if missing) if it fits; whether it did."""
    if not charge_fits(0, charge):
        # The insert branch of the upsert has no condition: refuse what can never fit here.
        return False
    counter = charge.counter
    row = insert(QUOTA_COUNTERS).values(
        tenant=counter.tenant,
        limit_kind=counter.kind_name,
        window_start=counter.window.start,
        window_end=counter.window.end,
        used=charge.amount,
    )
    statement = row.on_conflict_do_update(
        index_elements=[
            QUOTA_COUNTERS.c.tenant,
            QUOTA_COUNTERS.c.limit_kind,
            QUOTA_COUNTERS.c.window_start,
        ],
        set_={"used": QUOTA_COUNTERS.c.used + row.excluded.used},
        where=QUOTA_COUNTERS.c.used + row.excluded.used <= charge.limit,
    ).returning(QUOTA_COUNTERS.c.used)
    result = await connection.execute(statement)
    return result.first() is not None


def _is_row_of(counter: Counter) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        QUOTA_COUNTERS.c.tenant == counter.tenant,
        QUOTA_COUNTERS.c.limit_kind == counter.kind_name,
        QUOTA_COUNTERS.c.window_start == counter.window.start,
    )
