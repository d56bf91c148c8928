"""Casbin policy lines in the database, and the policy version replicas watch.

Lines are stored as Casbin's SQL adapters store them (ptype, v0..v5, unused fields
empty). Every change bumps the one-row version counter in the same transaction, so a
replica that polls `policy_version` and sees a number other than the one it loaded knows
to reload (`load_policy`, then `Authorizer.replace_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ._models import POLICY_FIELDS, PolicyLineRow, PolicyVersionRow
from ._policy_model import PolicyChange, PolicyChangeKind, PolicyLine, Section
from ._store_common import bump_counter, counter_value


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """Every policy line, and the version they are at (or later)."""

    version: int
    """The policy version read before the lines: a change racing the load is seen as newer."""
    lines: list[PolicyLine]
    """The lines, in the order they were first stored."""


def _fields(line: PolicyLine) -> dict[str, str]:
    padded = (*line.rule, *("",) * (POLICY_FIELDS - len(line.rule)))
    return {"ptype": line.ptype, **{f"v{index}": value for index, value in enumerate(padded)}}


def _line(row: PolicyLineRow) -> PolicyLine:
    values = (row.v0, row.v1, row.v2, row.v3, row.v4, row.v5)
    section = Section(row.ptype)
    return PolicyLine(section, tuple(value for value in values if value))


async def policy_version(session: AsyncSession) -> int:
    """The current policy version."""
    return await counter_value(session, PolicyVersionRow)


async def load_policy(session: AsyncSession) -> PolicySnapshot:
    """Every stored policy line with the version read just before them."""
    version = await policy_version(session)
    rows = (await session.execute(select(PolicyLineRow).order_by(PolicyLineRow.id))).scalars()
    return PolicySnapshot(version=version, lines=[_line(row) for row in rows])


async def save_policy_changes(
    session: AsyncSession, changes: Iterable[PolicyChange], *, now: datetime | None = None
) -> int:
    """Write changes (`Authorizer` mutations') and bump the version; the version now.

    An added line is stored with `now` (the current time by default) as its create_time.
    Adding a line present already (it keeps its time), or removing one that is gone
    (another replica was first), is no error. No changes: nothing written, the current
    version returned.
    """
    changes = list(changes)
    if not changes:
        return await policy_version(session)
    # Bump first: the row lock it takes on PostgreSQL orders concurrent changes.
    version = await bump_counter(session, PolicyVersionRow)
    create_time = now or datetime.now(UTC)
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for change in changes:
        fields = _fields(change.line)
        if change.kind is PolicyChangeKind.ADD:
            await session.execute(
                insert(PolicyLineRow)
                .values({**fields, "create_time": create_time})
                .on_conflict_do_nothing()
            )
        else:
            await session.execute(
                delete(PolicyLineRow).where(
                    and_(*(getattr(PolicyLineRow, name) == value for name, value in fields.items()))
                )
            )
    return version


async def line_create_time(session: AsyncSession, line: PolicyLine) -> datetime | None:
    """When `line` was stored; None if it is not stored, or was stored before its time was."""
    fields = _fields(line)
    statement = select(PolicyLineRow.create_time).where(
        and_(*(getattr(PolicyLineRow, name) == value for name, value in fields.items()))
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def seed_policy(session: AsyncSession, lines: Iterable[PolicyLine]) -> int:
    """Add `lines` (the platform role, a new tenant's roles), skipping stored ones; the version.

    The version is bumped whenever `lines` is not empty, so replicas reload once more.
    """
    return await save_policy_changes(
        session, (PolicyChange(PolicyChangeKind.ADD, line) for line in lines)
    )
