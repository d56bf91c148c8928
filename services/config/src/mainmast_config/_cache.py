"""The secret cache: TTL, single-flight, stale-while-revalidate, stale-if-error, negative
entries, a bounded size. Values live in this process's memory only.

For one key (name and version) a read finds one of these:

- a fresh entry: HIT;
- an entry within the last `refresh_ahead` of its TTL: answered at once
  (STALE_WHILE_REVALIDATE) while one background read refreshes it;
- no entry, or an expired one: a read from the source (MISS). However many callers miss at
  once, they share one read (single-flight);
- that read failed (the backend errored, throttled or was unreachable), and the expired
  entry is at most `max_staleness` past its expiry: the entry (STALE_IF_ERROR). Until
  `error_retry_interval` (or the backend's Retry-After, if longer) has passed, further reads
  answer STALE_IF_ERROR at once without asking the source again;
- a not-found answer younger than `negative_ttl`: the same NotFoundError again, without a read.

Past `max_entries`, the least recently used entry goes.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Protocol

from mainmast.errors import MainmastError, NotFoundError, ValidationError
from mainmast.logging import get_logger

from ._backend import SecretRecord

_Key = tuple[str, str]  # (name, version), "" for the latest


class CacheState(enum.StrEnum):
    """How the cache answered; each is a value of `mainmast.config.v1.CacheState` without prefix."""

    MISS = "MISS"
    """Read from the source during this call."""
    HIT = "HIT"
    """A fresh entry."""
    STALE_WHILE_REVALIDATE = "STALE_WHILE_REVALIDATE"
    """An entry near its expiry, while a refresh runs in the background."""
    STALE_IF_ERROR = "STALE_IF_ERROR"
    """An expired entry, because the source failed."""


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """How long the cache keeps what, in seconds."""

    ttl: float = 300.0
    """How long an entry is fresh."""
    ttl_overrides: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """TTLs of particular names, overriding `ttl`."""
    refresh_ahead: float = 0.1
    """The last fraction of an entry's TTL in which a read also refreshes it in the background."""
    max_staleness: float = 86_400.0
    """How long past its expiry an entry may still answer when the source fails."""
    negative_ttl: float = 5.0
    """How long a not-found answer is remembered; 0 remembers none."""
    error_retry_interval: float = 5.0
    """After a failed read, how long stale answers come without asking the source again."""
    max_entries: int = 10_000
    """The most entries kept; the least recently used goes first."""

    def __post_init__(self) -> None:
        ttls = [self.ttl, *self.ttl_overrides.values()]
        if min(ttls) <= 0:
            raise ValueError("cache TTLs are positive")
        if not 0 <= self.refresh_ahead < 1:
            raise ValueError("the cache's refresh_ahead is a fraction of the TTL, from 0 up to 1")
        if min(self.max_staleness, self.negative_ttl, self.error_retry_interval) < 0:
            raise ValueError("cache durations are not negative")
        if self.max_entries < 1:
            raise ValueError("a cache holds at least one entry")

    def ttl_of(self, name: str) -> float:
        """The TTL of entries of `name`."""
        return self.ttl_overrides.get(name, self.ttl)


@dataclass(frozen=True, slots=True)
class CachedSecret:
    """A secret as the cache answered it."""

    record: SecretRecord
    """The value, its version and the backend that answered."""
    state: CacheState
    """How the cache answered."""
    ttl: float
    """Seconds left of the entry's freshness (0 when it is stale)."""
    fetch_time: datetime
    """When the value was read from the source."""


class SecretSource(Protocol):
    """What the cache reads through: a backend chain, or one backend."""

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The secret `name` at `version` (None: the latest)."""
        ...


@dataclass(slots=True)
class _Entry:
    record: SecretRecord | None  # None for a not-found answer
    not_found: NotFoundError | None
    fetch_time: datetime
    expires_at: float
    refresh_at: float
    retry_at: float = 0.0  # after a failure: no read from the source before this


def _can_answer_stale(error: BaseException) -> bool:
    # A not-found answer is authoritative (the secret was deleted) and an invalid name is the
    # caller's mistake; any other error of the taxonomy is the source's trouble.
    return isinstance(error, MainmastError) and not isinstance(
        error, NotFoundError | ValidationError
    )


class SecretCache:
    """Caches what `source` answers; `clock` is monotonic seconds, `wall_clock` epoch seconds."""

    __slots__ = ("_clock", "_entries", "_in_flight", "_options", "_source", "_wall_clock")

    def __init__(
        self,
        source: SecretSource,
        options: CacheOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._options = options or CacheOptions()
        self._clock = clock
        self._wall_clock = wall_clock
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._in_flight: dict[_Key, asyncio.Task[_Entry]] = {}

    @property
    def options(self) -> CacheOptions:
        """The cache's options."""
        return self._options

    def __len__(self) -> int:
        """The number of entries, not-found answers included."""
        return len(self._entries)

    async def get(self, name: str, version: str | None = None) -> CachedSecret:
        """The secret `name` at `version` (None or "": the latest), from the cache if it can.

        Raises what the source raises when the cache has nothing to answer with.
        """
        key = (name, version or "")
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            if now < entry.expires_at:
                return self._answer_unexpired(key, entry, now)
        stale = entry if entry is not None and self._within_staleness(entry, now) else None
        if stale is not None and now < stale.retry_at:
            return self._answer(stale, CacheState.STALE_IF_ERROR, now)
        try:
            fresh = await asyncio.shield(self._read(key))
        except MainmastError as exc:
            if stale is None or not _can_answer_stale(exc):
                raise
            return self._answer(stale, CacheState.STALE_IF_ERROR, self._clock())
        if fresh.not_found is not None:
            raise copy.copy(fresh.not_found)
        return self._answer(fresh, CacheState.MISS, self._clock())

    def invalidate(self, name: str) -> None:
        """Forget every entry of `name`, so that the next read asks the source."""
        for key in [key for key in self._entries if key[0] == name]:
            del self._entries[key]

    async def drain(self) -> None:
        """Wait until no read is in flight (background refreshes included), however they end."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the reads in flight (background refreshes included)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _answer_unexpired(self, key: _Key, entry: _Entry, now: float) -> CachedSecret:
        if entry.not_found is not None:
            raise copy.copy(entry.not_found)
        if now < entry.refresh_at:
            return self._answer(entry, CacheState.HIT, now)
        if now >= entry.retry_at:
            self._read(key)  # in the background; its task is kept in `_in_flight`
        return self._answer(entry, CacheState.STALE_WHILE_REVALIDATE, now)

    def _within_staleness(self, entry: _Entry, now: float) -> bool:
        return entry.record is not None and now - entry.expires_at <= self._options.max_staleness

    def _answer(self, entry: _Entry, state: CacheState, now: float) -> CachedSecret:
        assert entry.record is not None  # callers answer only entries with a value
        return CachedSecret(
            record=entry.record,
            state=state,
            ttl=max(entry.expires_at - now, 0.0),
            fetch_time=entry.fetch_time,
        )

    def _read(self, key: _Key) -> asyncio.Task[_Entry]:
        """The one read of `key` in flight, started if there is none (single-flight)."""
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key), name=f"secret-cache-read:{key[0]}")
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._read_finished(key, done))
        return task

    def _read_finished(self, key: _Key, task: asyncio.Task[_Entry]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if task.cancelled():
            return
        # Retrieved here so that a background refresh that failed with nobody awaiting it is
        # not reported as "exception never retrieved": a source's trouble is recorded in the
        # entry, and the next read after expiry sees it. Anything else is a bug, and said.
        error = task.exception()
        if error is not None and not isinstance(error, MainmastError):
            get_logger(__name__).error(
                "secret read failed unexpectedly", secret_name=key[0], exc_info=error
            )

    async def _load(self, key: _Key) -> _Entry:
        name, version = key
        try:
            record = await self._source.get(name, version or None)
        except NotFoundError as exc:
            return self._store(key, None, exc, self._options.negative_ttl)
        except MainmastError as exc:
            if _can_answer_stale(exc):
                self._hold_off(key, exc)
            raise
        return self._store(key, record, None, self._options.ttl_of(name))

    def _store(
        self, key: _Key, record: SecretRecord | None, not_found: NotFoundError | None, ttl: float
    ) -> _Entry:
        now = self._clock()
        entry = _Entry(
            record=record,
            not_found=not_found,
            fetch_time=datetime.fromtimestamp(self._wall_clock(), UTC),
            expires_at=now + ttl,
            refresh_at=now + ttl * (1 - self._options.refresh_ahead),
        )
        if not_found is not None and ttl <= 0:
            self._entries.pop(key, None)  # negative caching is off: forget any older value
            return entry
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._options.max_entries:
            self._entries.popitem(last=False)
        return entry

    def _hold_off(self, key: _Key, error: MainmastError) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.record is None:
            return
        wait = self._options.error_retry_interval
        if error.retry_after is not None:
            wait = max(wait, error.retry_after.total_seconds())
        entry.retry_at = self._clock() + wait
