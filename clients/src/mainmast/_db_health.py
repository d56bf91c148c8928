"""The health snapshot of a DatabasePool and how a change of state is logged."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from structlog.typing import FilteringBoundLogger


class PoolState(enum.StrEnum):
    """What the last health check found."""

    UNKNOWN = "unknown"
    """No check has run yet."""
    HEALTHY = "healthy"
    """The database answered `SELECT 1` and no caller waits for a connection."""
    SATURATED = "saturated"
    """The database answers, but every connection is checked out and callers are waiting."""
    DOWN = "down"
    """A fresh connection could not be made or `SELECT 1` failed."""


@dataclass(frozen=True, slots=True)
class PoolHealth:
    """A consistent snapshot taken by one health check; nothing in it is secret."""

    state: PoolState
    """What the check found."""
    checked_out: int
    """Connections lent to callers at the time of the check."""
    size: int
    """Connections the pool keeps open (`pool_size`)."""
    max_overflow: int
    """Connections the pool may open beyond `size` under load."""
    overflow: int
    """Connections open beyond `size` at the time of the check."""
    waiting: int
    """Callers of `session()` or `connection()` waiting for a connection at check time."""
    last_error: str | None
    """The most recent connection failure, password masked; kept after recovery."""
    last_error_at: datetime | None
    """When `last_error` happened (UTC)."""
    last_check: datetime | None
    """When this snapshot was taken (UTC); None before the first check."""

    @property
    def capacity(self) -> int:
        """The most connections the pool will ever lend at once."""
        return self.size + self.max_overflow


def log_state_change(
    logger: FilteringBoundLogger, previous: PoolState, health: PoolHealth, database: str
) -> None:
    """Log that the pool went from `previous` to `health.state`, at a level that fits."""
    fields = {
        "database": database,
        "previous": previous.value,
        "checked_out": health.checked_out,
        "size": health.size,
        "max_overflow": health.max_overflow,
        "overflow": health.overflow,
        "waiting": health.waiting,
    }
    if health.state is PoolState.DOWN:
        logger.error("db.health.down", error=health.last_error, **fields)
    elif health.state is PoolState.SATURATED:
        logger.warning("db.health.saturated", **fields)
    elif health.state is PoolState.HEALTHY:
        logger.info("db.health.healthy", **fields)
