"""Casbin policy lines in the database, and the policy version replicas watch.

Lines are stored as Casbin's SQL adapters store them (ptype, v0..v5, unused fields
empty). Every change bumps the one-row version counter in the same transaction, so a
replica that polls `policy_version` and sees a number other than the one it loaded knows
to reload (`load_policy`, then `Authorizer.replace_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ._models import POLICY_FIELDS, PolicyLineRow, PolicyVersionRow
from ._policy_model import PolicyChange, PolicyChangeKind, PolicyLine, Section

POLICY_VERSION_ROW: Final = 1
"""Primary key of the policy version counter's one row (inserted by the first migration)."""


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
    statement = select(PolicyVersionRow.version).where(PolicyVersionRow.id == POLICY_VERSION_ROW)
    return int((await session.execute(statement)).scalar_one())


async def load_policy(session: AsyncSession) -> PolicySnapshot:
    """Every stored policy line with the version read just before them."""
    version = await policy_version(session)
    rows = (await session.execute(select(PolicyLineRow).order_by(PolicyLineRow.id))).scalars()
    return PolicySnapshot(version=version, lines=[_line(row) for row in rows])


async def save_policy_changes(session: AsyncSession, changes: Iterable[PolicyChange]) -> int:
    """Write changes (`Authorizer` mutations') and bump the version; the version now.

    Adding a line present already, or removing one that is gone (another replica was
    first), is no error. No changes: nothing written, the current version returned.
    """
    changes = list(changes)
    if not changes:
        return await policy_version(session)
    # Bump first: the row lock it takes on PostgreSQL orders concurrent changes.
    bumped = await session.execute(
        update(PolicyVersionRow)
        .where(PolicyVersionRow.id == POLICY_VERSION_ROW)
        .values(version=PolicyVersionRow.version + 1)
        .returning(PolicyVersionRow.version)
    )
    version = int(bumped.scalar_one())
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for change in changes:
        fields = _fields(change.line)
        if change.kind is PolicyChangeKind.ADD:
            await session.execute(insert(PolicyLineRow).values(fields).on_conflict_do_nothing())
        else:
            await session.execute(
                delete(PolicyLineRow).where(
                    and_(*(getattr(PolicyLineRow, name) == value for name, value in fields.items()))
                )
            )
    return version


async def seed_policy(session: AsyncSession, lines: Iterable[PolicyLine]) -> int:
    """Add `lines` (the platform role, a new tenant's roles), skipping stored ones; the version.

    The version is bumped whenever `lines` is not empty, so replicas reload once more.
    """
    return await save_policy_changes(
        session, (PolicyChange(PolicyChangeKind.ADD, line) for line in lines)
    )
