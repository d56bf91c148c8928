"""Where quota counters live: the protocol every store keeps, and the in-memory store.

A counter is one limit of one tenant in one window. A store does two things with
counters, each atomically: `reserve` adds amounts to several counters only if every one
stays within its limit (all or nothing), and `adjust` adds a positive or negative
difference to counters afterwards (never below zero, and never to a window that is gone).
Three stores keep this protocol: `MemoryQuotaStore` here (one process, the zero-config
default), `RedisQuotaStore` and `PostgresQuotaStore` (counters shared by every replica).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from ._limits import LimitKind, Window

_PURGE_INTERVAL_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True, order=True)
class Counter:
    """One limit of one tenant in one window; ordered, so stores lock counters in one order."""

    tenant: str
    kind_name: str
    """The LimitKind's value (a str, so counters sort and serialise plainly)."""
    window: Window

    @classmethod
    def of(cls, tenant: str, kind: LimitKind, window: Window) -> Counter:
        """The counter of `kind` for `tenant` in `window`."""
        return cls(tenant=tenant, kind_name=kind.value, window=window)

    @property
    def kind(self) -> LimitKind:
        """The kind of limit counted."""
        return LimitKind(self.kind_name)


@dataclass(frozen=True, slots=True)
class CounterCharge:
    """An amount to add to a counter only if the counter stays within `limit`."""

    counter: Counter
    amount: int
    limit: int


@dataclass(frozen=True, slots=True)
class CounterAdjustment:
    """A difference to add to a counter after the fact, whatever its limit."""

    counter: Counter
    delta: int


class QuotaStore(Protocol):
    """Atomic counters for quotas; every method may raise UnavailableError."""

    async def reserve(self, charges: Sequence[CounterCharge], *, now: float) -> tuple[int, ...]:
        """Add every charge, or none: the indexes of the charges that would pass their limit.

        An empty tuple means all were added; otherwise nothing was added.
        """
        ...

    async def adjust(self, adjustments: Sequence[CounterAdjustment], *, now: float) -> None:
        """Add each delta to its counter, flooring at zero; counters of ended windows are left."""
        ...

    async def used(self, counter: Counter) -> int:
        """The amount counted so far (0 for a counter never charged or already expired)."""
        ...

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


def charge_fits(used: int, charge: CounterCharge) -> bool:
    """Whether `charge` fits on top of `used`: the one rule every store applies."""
    return used + charge.amount <= charge.limit


class MemoryQuotaStore:
    """Counters in this process's memory: right for one replica only.

    Every method runs without awaiting, so on one event loop each call is atomic.
    Counters of ended windows are dropped once a minute.
    """

    def __init__(self) -> None:
        self._counters: dict[Counter, int] = {}
        self._next_purge = 0.0

    def __repr__(self) -> str:
        return f"MemoryQuotaStore(counters={len(self._counters)})"

    async def reserve(self, charges: Sequence[CounterCharge], *, now: float) -> tuple[int, ...]:
        """Add every charge, or none: the indexes of the charges that would pass their limit."""
        self._purge(now)
        failed = tuple(
            index
            for index, charge in enumerate(charges)
            if not charge_fits(self._counters.get(charge.counter, 0), charge)
        )
        if not failed:
            for charge in charges:
                self._counters[charge.counter] = (
                    self._counters.get(charge.counter, 0) + charge.amount
                )
        return failed

    async def adjust(self, adjustments: Sequence[CounterAdjustment], *, now: float) -> None:
        """Add each delta to its counter, flooring at zero; counters of ended windows are left."""
        self._purge(now)
        for adjustment in adjustments:
            counter = adjustment.counter
            if counter in self._counters:
                self._counters[counter] = max(self._counters[counter] + adjustment.delta, 0)

    async def used(self, counter: Counter) -> int:
        """The amount counted so far."""
        return self._counters.get(counter, 0)

    async def close(self) -> None:
        """Forget every counter."""
        self._counters.clear()

    def _purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + _PURGE_INTERVAL_SECONDS
        ended = [counter for counter in self._counters if counter.window.end <= now]
        for counter in ended:
            del self._counters[counter]
