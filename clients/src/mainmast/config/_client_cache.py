"""The client's own cache: values kept for a while, bounded, and one load per key at a time.

However many tasks ask for a key that is not cached, one load runs and all of them get
its result (single-flight); a load that fails is shared too, and nothing is stored. A
value stored or a key dropped while a load of it is in flight overtakes that load: its
older result is still returned to whoever waited for it, but it is not stored, and later
readers start a load of their own. Values
live in memory only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from mainmast.auth._ttl_cache import TtlLruCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Load = Callable[[], Awaitable[tuple[V, float | None]]]
"""Reads a value; returns it and how long it may be kept (None: the cache's TTL)."""


class SingleFlightCache(Generic[K, V]):
    """At most `max_entries` values, each kept up to `ttl_seconds`; 0 for either keeps none
    (loads are still shared). For one event loop."""

    __slots__ = ("_entries", "_loads", "_overtaken")

    def __init__(
        self, *, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: TtlLruCache[K, V] = TtlLruCache(
            ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock
        )
        self._loads: dict[K, asyncio.Task[V]] = {}
        self._overtaken: set[asyncio.Task[V]] = set()

    def __len__(self) -> int:
        """The number of values kept (expired ones included until next asked for)."""
        return len(self._entries)

    @property
    def loads_in_flight(self) -> int:
        """How many loads are running."""
        return len(self._loads)

    def peek(self, key: K) -> V | None:
        """The live value of `key`, or None; never loads."""
        return self._entries.get(key)

    async def get(self, key: K, load: Load[V]) -> V:
        """The value of `key`: kept, or from the load in flight, or from a new `load()`."""
        kept = self._entries.get(key)
        if kept is not None:
            return kept
        task = self._loads.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, load))
            self._loads[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: one waiter giving up (cancelled) does not cancel the others' load.
        return await asyncio.shield(task)

    def put(self, key: K, value: V, *, ttl_seconds: float | None = None) -> None:
        """Keep `value` for `key` (up to `ttl_seconds`); a load of `key` in flight is overtaken."""
        self._overtake(key)
        self._entries.put(key, value, ttl_seconds=ttl_seconds)

    def discard(self, key: K) -> None:
        """Forget `key`; a load of it in flight is overtaken."""
        self._overtake(key)
        self._entries.discard(key)

    def clear(self) -> None:
        """Forget every value; loads in flight are overtaken."""
        self._overtaken.update(self._loads.values())
        self._loads.clear()
        self._entries.clear()

    async def _load(self, key: K, load: Load[V]) -> V:
        value, ttl_seconds = await load()
        task = asyncio.current_task()
        if task not in self._overtaken:
            self._entries.put(key, value, ttl_seconds=ttl_seconds)
        return value

    def _overtake(self, key: K) -> None:
        # Out of `_loads` too: a later reader starts afresh instead of joining the old load.
        task = self._loads.pop(key, None)
        if task is not None:
            self._overtaken.add(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._loads.get(key) is task:
            del self._loads[key]
        self._overtaken.discard(task)
        if not task.cancelled():
            # Retrieved, so that a load whose every waiter gave up is not reported as an
            # exception never retrieved; the waiters that stayed got it already.
            task.exception()
