"""What the store modules share: pages of a listing, unique violations as AlreadyExistsError,
and the one-row version counters replicas poll."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.errors import AlreadyExistsError, ValidationError

from ._models import AccessStateVersionRow, PolicyVersionRow

T = TypeVar("T")

CounterRow = type[PolicyVersionRow] | type[AccessStateVersionRow]
"""A table holding one version counter that replicas poll."""

COUNTER_ROW_ID: Final = 1
"""Primary key of a version counter's one row (inserted by the migration that made it)."""

MAX_PAGE_SIZE: Final = 1000
"""The largest page a listing returns, whatever was asked for."""

_UNIQUE_VIOLATION_STATE: Final = "23505"
_SQLITE_UNIQUE_TEXT: Final = ("unique constraint failed", "primary key must be unique")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, in key order."""

    items: list[T]
    """The rows of this page."""
    next_after: str | None
    """The key to pass as `after` for the next page; None on the last page."""


def checked_page_size(page_size: int) -> int:
    """`page_size` capped at MAX_PAGE_SIZE; ValidationError unless it is at least 1."""
    if page_size < 1:
        raise ValidationError(f"page_size must be at least 1, got {page_size}")
    return min(page_size, MAX_PAGE_SIZE)


def page_of(rows: list[T], page_size: int, key: str | None) -> Page[T]:
    """The page of `rows` fetched with `page_size + 1` (the extra row says there is more)."""
    if len(rows) > page_size:
        return Page(rows[:page_size], key)
    return Page(rows, None)


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the database refused a row for a duplicate key (not a foreign key, say)."""
    original = exc.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if isinstance(state, str) and state:
        return state == _UNIQUE_VIOLATION_STATE
    text = str(original).lower()
    return any(marker in text for marker in _SQLITE_UNIQUE_TEXT)


async def flush_new(session: AsyncSession, resource_type: str, resource_id: str) -> None:
    """Flush a new row: AlreadyExistsError(resource_type, resource_id) on a duplicate key.

    After that error the session's transaction is spoilt: the caller rolls it back (as
    `DatabasePool.session()` does when the error leaves its block).
    """
    try:
        await session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise AlreadyExistsError(resource_type, resource_id) from exc
        raise


async def counter_value(session: AsyncSession, counter: CounterRow) -> int:
    """The current value of a version counter."""
    statement = select(counter.version).where(counter.id == COUNTER_ROW_ID)
    return int((await session.execute(statement)).scalar_one())


async def bump_counter(session: AsyncSession, counter: CounterRow) -> int:
    """Add one to a version counter in the session's transaction; the new value.

    On PostgreSQL the update holds the row until the transaction ends, so concurrent
    changes are ordered by it and a reader that sees value N sees every change up to N.
    """
    bumped = await session.execute(
        update(counter)
        .where(counter.id == COUNTER_ROW_ID)
        .values(version=counter.version + 1)
        .returning(counter.version)
    )
    return int(bumped.scalar_one())
