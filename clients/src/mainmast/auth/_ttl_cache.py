"""A small bounded cache whose entries expire: the client's decision and revocation caches.

Permission decisions and revocation answers may be reused for a few seconds, never longer:
a revoked grant must stop working soon. The bound keeps a flood of distinct keys (one
per user and permission) from growing memory without limit; the least recently used
entry goes first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlLruCache(Generic[K, V]):
    """At most `max_entries` values, each kept for `ttl_seconds` after it was stored.

    Not thread-safe; meant for one event loop, where no await splits its operations.
    A `ttl_seconds` or `max_entries` of 0 turns the cache off (nothing is kept).
    """

    __slots__ = ("_clock", "_entries", "_max_entries", "_ttl")

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds is not negative")
        if max_entries < 0:
            raise ValueError("max_entries is not negative")
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The live value stored under `key`, or None (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V, *, ttl_seconds: float | None = None) -> None:
        """Store `value` under `key` for the TTL (or `ttl_seconds`, when given, up to the
        TTL); the least recently used go beyond the bound."""
        ttl = self._ttl if ttl_seconds is None else min(ttl_seconds, self._ttl)
        if ttl <= 0 or self._max_entries <= 0:
            return
        self._entries[key] = (self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget the entry of `key`, if there is one."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
