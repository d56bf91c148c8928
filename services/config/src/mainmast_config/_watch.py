"""The secret watch: one poller over the backends, fanned out to every subscriber.

Every `interval` seconds the watcher reads the latest version of each name any subscriber
watches, once, whatever the number of subscribers, and offers what changed to the
subscribers of that name (see `WatchSubscription`: a slow one never holds up the others).
A name read for the first time is read at once, not at the next poll, so a new subscriber
hears straight away about every name whose version differs from what it knows; a name
another subscriber already watches is answered from what the watcher knows, with no read.

A deleted secret (no backend has it) is a change too. A backend in trouble is not: the
watcher keeps what it knew, logs the trouble once per name, and reads again at the next
poll, so streams stay open and resume when the backend answers.

On a change the watcher tells the `ReadGuard` the cache reads through, then invalidates the
cache's entries of the name, so that the next read gets the new version and a read already
in flight cannot store the old one (see `_watch_guard`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final

from mainmast.errors import MainmastError, NotFoundError
from mainmast.logging import get_logger

from ._backend import SecretRecord
from ._cache import SecretCache, SecretSource
from ._errors import ConfigErrorReason
from ._names import check_name
from ._watch_guard import ReadGuard
from ._watch_subscription import SecretChange, WatchSubscription

DEFAULT_POLL_INTERVAL: Final = 10.0
"""Seconds between two polls of the backends."""
DEFAULT_MAX_CONCURRENT_READS: Final = 8
"""How many names a poll reads at once."""


class SecretWatcher:
    """Polls `source` (the backend chain, not the cache) for the names its subscribers watch.

    `cache` and `read_guard`, when given, are told of every change: the cache should read
    through the guard. `clock` (monotonic seconds) and `sleep` time the polls.
    """

    __slots__ = (
        "_cache",
        "_clock",
        "_closed",
        "_failing",
        "_interval",
        "_known",
        "_logger",
        "_poller",
        "_read_guard",
        "_read_slots",
        "_reads",
        "_sleep",
        "_source",
        "_subscribers",
    )

    def __init__(
        self,
        source: SecretSource,
        *,
        interval: float = DEFAULT_POLL_INTERVAL,
        cache: SecretCache | None = None,
        read_guard: ReadGuard | None = None,
        max_concurrent_reads: int = DEFAULT_MAX_CONCURRENT_READS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError("the watch's poll interval is positive")
        if max_concurrent_reads < 1:
            raise ValueError("a poll reads at least one name at a time")
        self._source = source
        self._interval = interval
        self._cache = cache
        self._read_guard = read_guard
        self._clock = clock
        self._sleep = sleep
        self._read_slots = asyncio.Semaphore(max_concurrent_reads)
        self._subscribers: dict[str, set[WatchSubscription]] = {}
        # The latest record of each watched name once read; None when no backend has it.
        self._known: dict[str, SecretRecord | None] = {}
        self._failing: set[str] = set()
        self._reads: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._closed = False
        self._logger = get_logger(__name__)

    @property
    def interval(self) -> float:
        """Seconds between two polls."""
        return self._interval

    @property
    def closed(self) -> bool:
        """Whether `aclose` has run: no more subscriptions."""
        return self._closed

    @property
    def watched_names(self) -> frozenset[str]:
        """The names at least one subscriber watches."""
        return frozenset(self._subscribers)

    def subscribe(
        self, names: Iterable[str], known_versions: Mapping[str, str] | None = None
    ) -> WatchSubscription:
        """Watch `names`, holding `known_versions` (name to version; missing or "": none).

        The subscription gets at once every name whose current version differs from what it
        holds, then every change. ValidationError (INVALID_NAME) for an invalid name.
        """
        if self._closed:
            raise RuntimeError("the secret watcher is closed")
        watched = frozenset(check_name(name, field="names") for name in names)
        subscription = WatchSubscription(watched, known_versions or {}, self._unsubscribe)
        for name in watched:
            self._subscribers.setdefault(name, set()).add(subscription)
            if name in self._known:
                subscription.offer(SecretChange(name, self._known[name]))
            else:
                self._read(name)  # in the background; what it finds is offered
        return subscription

    def start(self) -> None:
        """Start polling every `interval` seconds, in the background, until `aclose`."""
        if self._closed:
            raise RuntimeError("the secret watcher is closed")
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever(), name="secret-watch-poller")

    async def poll(self) -> None:
        """Read every watched name once (joining reads already in flight) and offer changes."""
        reads = [self._read(name) for name in self._subscribers]
        if reads:
            await asyncio.gather(*reads)

    async def drain(self) -> None:
        """Wait until no read is in flight (such as the first reads of new subscribers)."""
        while self._reads:
            await asyncio.gather(*self._reads.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop polling and end every subscription (after what is pending for it)."""
        self._closed = True
        tasks = list(self._reads.values())
        if self._poller is not None:
            tasks.append(self._poller)
            self._poller = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        subscriptions = {sub for subs in self._subscribers.values() for sub in subs}
        self._subscribers.clear()
        self._known.clear()
        for subscription in subscriptions:
            subscription.end()

    async def __aenter__(self) -> SecretWatcher:
        """Start polling."""
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop polling and end every subscription."""
        await self.aclose()

    async def _poll_forever(self) -> None:
        while True:
            started = self._clock()
            await self.poll()
            # From start to start: a slow poll shortens the wait rather than adding to it.
            await self._sleep(max(self._interval - (self._clock() - started), 0.0))

    def _read(self, name: str) -> asyncio.Task[None]:
        """The read of `name` in flight, started if there is none: pollers and new
        subscribers share it."""
        task = self._reads.get(name)
        if task is None:
            task = asyncio.create_task(self._read_latest(name), name=f"secret-watch-read:{name}")
            self._reads[name] = task
            task.add_done_callback(lambda done: self._read_finished(name, done))
        return task

    def _read_finished(self, name: str, task: asyncio.Task[None]) -> None:
        if self._reads.get(name) is task:
            del self._reads[name]

    async def _read_latest(self, name: str) -> None:
        async with self._read_slots:
            try:
                record: SecretRecord | None = await self._source.get(name)
            except NotFoundError as exc:
                if exc.reason != ConfigErrorReason.SECRET_NOT_FOUND:
                    self._read_failed(name, exc)
                    return
                record = None
            except MainmastError as exc:
                self._read_failed(name, exc)
                return
            except Exception:
                # A bug in one backend must not end the watch: said, and read again next poll.
                self._logger.exception("secret watch read failed unexpectedly", secret_name=name)
                return
        self._observe(name, record)

    def _read_failed(self, name: str, error: MainmastError) -> None:
        # Once per outage and name: a backend down for an hour would otherwise log every poll.
        if name in self._subscribers and name not in self._failing:
            self._failing.add(name)
            self._logger.warning(
                "secret watch cannot read a watched secret; streams wait",
                secret_name=name,
                reason=error.reason,
                error=error.message,
            )

    def _observe(self, name: str, record: SecretRecord | None) -> None:
        subscribers = self._subscribers.get(name)
        if subscribers is None:
            return  # nobody watches it any more
        if name in self._failing:
            self._failing.discard(name)
            self._logger.info("secret watch reads a watched secret again", secret_name=name)
        first_sight = name not in self._known
        previous = self._known.get(name)
        if not first_sight and _version(previous) == _version(record):
            return
        self._known[name] = record
        if not first_sight:
            # Before any subscriber hears of it, so that what it then reads is the new version.
            if self._read_guard is not None:
                self._read_guard.changed(name)
            if self._cache is not None:
                self._cache.invalidate(name)
            self._logger.info(
                "watched secret changed",
                secret_name=name,
                version=_version(record),
                backend=None if record is None else record.backend.value,
                change="deleted" if record is None else "updated",
            )
        change = SecretChange(name, record)
        for subscription in subscribers:
            subscription.offer(change)

    def _unsubscribe(self, subscription: WatchSubscription) -> None:
        for name in subscription.names:
            subscribers = self._subscribers.get(name)
            if subscribers is None:
                continue
            subscribers.discard(subscription)
            if not subscribers:
                # Nobody watches it: stop reading it and forget its value.
                del self._subscribers[name]
                self._known.pop(name, None)
                self._failing.discard(name)


def _version(record: SecretRecord | None) -> str:
    return "" if record is None else record.version
