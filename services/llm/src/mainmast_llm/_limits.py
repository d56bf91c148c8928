"""The limits of a tenant and the windows they are counted in.

Four limits, each optional: requests per minute, tokens per minute, and token budgets per
UTC day and per UTC month. All four are counted in fixed windows aligned to UTC (the
minute, the day, the month). Fixed windows, not sliding ones, because each limit is then
one integer per window: a store can check and add to it in one atomic step (one UPDATE,
one Lua script), a reservation can be settled exactly by adding the difference to the
window it was taken from, and a budget period is a calendar window anyway. The price is
that a burst may take up to twice a per-minute limit across a minute's boundary, which a
rate limit in front of a provider tolerates.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

_MINUTE: Final = 60


class LimitKind(enum.Enum):
    """One kind of limit; the value names it in counters, logs and error metadata."""

    REQUESTS_PER_MINUTE = "requests_per_minute"
    TOKENS_PER_MINUTE = "tokens_per_minute"
    DAILY_TOKENS = "daily_tokens"
    MONTHLY_TOKENS = "monthly_tokens"

    @property
    def counts_tokens(self) -> bool:
        """Whether the limit counts tokens (all but requests per minute)."""
        return self is not LimitKind.REQUESTS_PER_MINUTE

    @property
    def reason(self) -> str:
        """The llm service's error reason when this limit is reached."""
        return _REASONS[self]

    def describe(self, limit: int) -> str:
        """The limit for a human: `60 requests per minute`, `100000 tokens per UTC day`."""
        return f"{limit} {_UNITS[self]}"

    def window(self, now: float) -> Window:
        """The UTC window of this limit that contains `now` (seconds since the epoch)."""
        if self in (LimitKind.REQUESTS_PER_MINUTE, LimitKind.TOKENS_PER_MINUTE):
            start = int(now // _MINUTE) * _MINUTE
            return Window(start=start, end=start + _MINUTE)
        moment = datetime.fromtimestamp(now, UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if self is LimitKind.DAILY_TOKENS:
            return Window.between(day, day + timedelta(days=1))
        month = day.replace(day=1)
        next_month = (month + timedelta(days=32)).replace(day=1)
        return Window.between(month, next_month)


_REASONS: Final = {
    LimitKind.REQUESTS_PER_MINUTE: "REQUESTS_PER_MINUTE_EXCEEDED",
    LimitKind.TOKENS_PER_MINUTE: "TOKENS_PER_MINUTE_EXCEEDED",
    LimitKind.DAILY_TOKENS: "BUDGET_EXHAUSTED",
    LimitKind.MONTHLY_TOKENS: "BUDGET_EXHAUSTED",
}

_UNITS: Final = {
    LimitKind.REQUESTS_PER_MINUTE: "requests per minute",
    LimitKind.TOKENS_PER_MINUTE: "tokens per minute",
    LimitKind.DAILY_TOKENS: "tokens per UTC day",
    LimitKind.MONTHLY_TOKENS: "tokens per UTC month",
}


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A fixed window in whole seconds since the epoch: `start` counts, `end` does not."""

    start: int
    end: int

    @classmethod
    def between(cls, start: datetime, end: datetime) -> Window:
        """The window from one UTC datetime to another."""
        return cls(start=int(start.timestamp()), end=int(end.timestamp()))

    def seconds_left(self, now: float) -> float:
        """How long from `now` until the window ends (never negative)."""
        return max(self.end - now, 0.0)


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """The limits of one tenant; None means no limit of that kind."""

    requests_per_minute: int | None = None
    """Calls per UTC minute."""
    tokens_per_minute: int | None = None
    """Tokens (prompt and completion) per UTC minute."""
    daily_tokens: int | None = None
    """Tokens per UTC day."""
    monthly_tokens: int | None = None
    """Tokens per UTC month."""

    def __post_init__(self) -> None:
        for kind, limit in self.items():
            # bool is an int, but `True` requests per minute is a mistake, not a limit.
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                msg = f"{kind.value} must be a whole number >= 0 or None, not {limit!r}"
                raise ValueError(msg)

    def items(self) -> list[tuple[LimitKind, int]]:
        """The limits that are set, in the order of LimitKind."""
        values = {
            LimitKind.REQUESTS_PER_MINUTE: self.requests_per_minute,
            LimitKind.TOKENS_PER_MINUTE: self.tokens_per_minute,
            LimitKind.DAILY_TOKENS: self.daily_tokens,
            LimitKind.MONTHLY_TOKENS: self.monthly_tokens,
        }
        return [(kind, limit) for kind, limit in values.items() if limit is not None]


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """Which limits apply to which tenant: one default, and overrides by tenant name."""

    default: TenantLimits = field(default_factory=TenantLimits)
    """The limits of every tenant without an override; no limits unless given."""
    tenants: Mapping[str, TenantLimits] = field(default_factory=dict)
    """Limits of particular tenants, replacing the default (not merged with it)."""

    def limits_for(self, tenant: str) -> TenantLimits:
        """The limits of `tenant`."""
        return self.tenants.get(tenant, self.default)
