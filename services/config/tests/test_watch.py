"""The secret watch: resume from known versions, one poll for every subscriber, outages that
keep streams open, slow subscribers that coalesce, and the cache kept in step."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from mainmast.errors import ValidationError
from mainmast_config._backend import BackendKind, SecretRecord, digest_version
from mainmast_config._cache import CacheState, SecretCache
from mainmast_config._chain import BackendChain
from mainmast_config._errors import backend_throttled, backend_unavailable
from mainmast_config._testing import FakeClock, ScriptedBackend
from mainmast_config._watch import SecretWatcher
from mainmast_config._watch_subscription import ChangeType, SecretChange, WatchSubscription

VAULT = BackendKind.KEY_VAULT


def _v(value: str) -> str:
    return digest_version(value)


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(VAULT, {"database-password": "pw-1", "api-key": "key-1"})


@pytest.fixture
async def watcher(backend: ScriptedBackend, clock: FakeClock) -> SecretWatcher:
    return SecretWatcher(BackendChain([backend], clock=clock), clock=clock)


def _pending(subscription: WatchSubscription) -> list[SecretChange]:
    """What a subscription has ready, read without waiting."""
    changes: list[SecretChange] = []
    while subscription.pending:
        changes.append(_next_ready(subscription))
    return changes


def _next_ready(subscription: WatchSubscription) -> SecretChange:
    # A subscription with something pending answers without suspending, so one step of the
    # coroutine is the whole read.
    step = subscription.__anext__()
    try:
        step.send(None)
    except StopIteration as done:
        change: SecretChange = done.value
        return change
    step.close()
    raise AssertionError("the subscription had nothing ready")


def _summary(changes: list[SecretChange]) -> list[tuple[str, ChangeType, str, str | None]]:
    return [
        (
            change.name,
            change.change_type,
            change.version,
            None if change.record is None else change.record.value,
        )
        for change in changes
    ]


async def test_a_first_subscription_gets_every_existing_name_at_once(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    subscription = watcher.subscribe(["database-password", "api-key", "not-yet"])
    await watcher.drain()
    assert sorted(_summary(_pending(subscription))) == [
        ("api-key", ChangeType.UPDATED, _v("key-1"), "key-1"),
        ("database-password", ChangeType.UPDATED, _v("pw-1"), "pw-1"),
    ]
    assert backend.calls == 3
    await watcher.aclose()


async def test_a_resumed_subscription_gets_only_what_differs_from_what_it_holds(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    backend.secrets["api-key"] = "key-2"
    subscription = watcher.subscribe(
        ["database-password", "api-key", "gone", "never-was"],
        known_versions={
            "database-password": _v("pw-1"),  # current: nothing to send
            "api-key": _v("key-1"),  # rotated since: the new version
            "gone": _v("old"),  # deleted since: a deletion
            "unwatched": _v("x"),  # not watched: ignored
        },
    )
    await watcher.drain()
    assert sorted(_summary(_pending(subscription))) == [
        ("api-key", ChangeType.UPDATED, _v("key-2"), "key-2"),
        ("gone", ChangeType.DELETED, "", None),
    ]
    assert subscription.held_versions == {
        "database-password": _v("pw-1"),
        "api-key": _v("key-2"),
        "gone": "",
        "never-was": "",
    }
    await watcher.aclose()


async def test_one_poll_serves_every_subscriber(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    names = ["database-password", "api-key"]
    subscriptions = [watcher.subscribe(names) for _ in range(50)]
    await watcher.drain()
    # The first reads are shared by all fifty subscribers, however many subscribed at once.
    assert backend.calls == 2
    late = watcher.subscribe(names, known_versions={"api-key": _v("key-1")})
    assert _summary(_pending(late)) == [
        ("database-password", ChangeType.UPDATED, _v("pw-1"), "pw-1")
    ]
    assert backend.calls == 2  # answered from what the watcher knows
    for subscription in subscriptions:
        assert len(_pending(subscription)) == 2

    backend.secrets["database-password"] = "pw-2"
    await watcher.poll()
    assert backend.calls == 4
    for subscription in [*subscriptions, late]:
        assert _summary(_pending(subscription)) == [
            ("database-password", ChangeType.UPDATED, _v("pw-2"), "pw-2")
        ]
    await watcher.poll()  # nothing changed: nothing sent
    assert all(subscription.pending == 0 for subscription in subscriptions)
    await watcher.aclose()


async def test_a_backend_outage_keeps_streams_open_and_they_resume(
    watcher: SecretWatcher, backend: ScriptedBackend, clock: FakeClock
) -> None:
    subscription = watcher.subscribe(["database-password"])
    await watcher.drain()
    assert len(_pending(subscription)) == 1
    backend.secrets["database-password"] = "pw-2"
    with capture_logs() as logs:
        backend.fail_next(backend_unavailable("KEY_VAULT", "connection refused"), count=3)
        for _ in range(3):
            await watcher.poll()
        assert subscription.pending == 0
        backend.fail_next(backend_throttled("KEY_VAULT", retry_after=30.0))
        await watcher.poll()
        await watcher.poll()  # the chain holds the backend off: it is not even asked
        assert backend.calls == 5
        clock.advance(30)
        await watcher.poll()
    # The stream is still open: the change made during the outage arrives.
    reader = asyncio.create_task(anext(subscription))
    change = await reader
    assert (change.name, change.version, change.record and change.record.value) == (
        "database-password",
        _v("pw-2"),
        "pw-2",
    )
    warnings = [event for event in logs if event["log_level"] == "warning"]
    assert len(warnings) == 1  # once per outage, not once per poll
    assert warnings[0]["reason"] == "BACKEND_UNAVAILABLE"
    assert [event["event"] for event in logs if event["log_level"] == "info"] == [
        "secret watch reads a watched secret again",
        "watched secret changed",
    ]
    assert "pw-2" not in repr(logs)
    await watcher.aclose()


async def test_a_slow_subscriber_gets_the_latest_version_and_blocks_nobody(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    slow = watcher.subscribe(["database-password", "api-key"])
    fast = watcher.subscribe(["database-password"])
    await watcher.drain()
    _pending(fast)
    seen_by_fast: list[str] = []
    for value in ("pw-2", "pw-3", "pw-4"):
        backend.secrets["database-password"] = value
        await watcher.poll()
        seen_by_fast.append((await anext(fast)).version)
    assert seen_by_fast == [_v("pw-2"), _v("pw-3"), _v("pw-4")]
    # At most one pending change per name: the latest.
    assert slow.pending == 2
    assert sorted(_summary(_pending(slow))) == [
        ("api-key", ChangeType.UPDATED, _v("key-1"), "key-1"),
        ("database-password", ChangeType.UPDATED, _v("pw-4"), "pw-4"),
    ]
    await watcher.aclose()


async def test_a_change_undone_before_it_was_read_is_not_sent(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    subscription = watcher.subscribe(
        ["database-password"], known_versions={"database-password": _v("pw-1")}
    )
    await watcher.drain()
    backend.secrets["database-password"] = "pw-2"
    await watcher.poll()
    assert subscription.pending == 1
    backend.secrets["database-password"] = "pw-1"  # rolled back
    await watcher.poll()
    assert subscription.pending == 0
    await watcher.aclose()


async def test_deletion_and_recreation_are_both_changes(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    subscription = watcher.subscribe(["api-key"])
    await watcher.drain()
    assert _pending(subscription)[0].version == _v("key-1")
    del backend.secrets["api-key"]
    await watcher.poll()
    backend.secrets["api-key"] = "key-9"
    changes = [await anext(subscription)]
    await watcher.poll()
    changes.append(await anext(subscription))
    assert _summary(changes) == [
        ("api-key", ChangeType.DELETED, "", None),
        ("api-key", ChangeType.UPDATED, _v("key-9"), "key-9"),
    ]
    await watcher.aclose()


async def test_a_change_invalidates_the_cache(backend: ScriptedBackend, clock: FakeClock) -> None:
    chain = BackendChain([backend], clock=clock)
    cache = SecretCache(chain, clock=clock, wall_clock=clock.wall)
    watcher = SecretWatcher(chain, cache=cache, clock=clock)
    watcher.subscribe(["database-password"])
    await watcher.drain()
    assert (await cache.get("database-password")).record.value == "pw-1"
    backend.secrets["database-password"] = "pw-2"
    assert (await cache.get("database-password")).state == CacheState.HIT
    await watcher.poll()
    answer = await cache.get("database-password")
    assert (answer.record.value, answer.state) == ("pw-2", CacheState.MISS)
    await watcher.aclose()


async def test_closing_a_subscription_stops_watching_its_names(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    first = watcher.subscribe(["database-password", "api-key"])
    async with watcher.subscribe(["api-key"]) as second:
        await watcher.drain()
        first.close()
        assert watcher.watched_names == {"api-key"}
        calls = backend.calls
        await watcher.poll()
        assert backend.calls == calls + 1
    assert watcher.watched_names == frozenset()
    assert [change async for change in first] == []
    assert [change async for change in second] == []
    await watcher.poll()
    assert backend.calls == calls + 1
    await watcher.aclose()


async def test_closing_the_watcher_ends_every_stream_after_what_is_pending(
    watcher: SecretWatcher,
) -> None:
    subscription = watcher.subscribe(["database-password"])
    waiting = watcher.subscribe(["missing"])
    reader = asyncio.create_task(anext(waiting, None))
    await watcher.drain()
    await watcher.aclose()
    assert await reader is None
    assert [change.name async for change in subscription] == ["database-password"]
    with pytest.raises(RuntimeError, match="closed"):
        watcher.subscribe(["api-key"])


async def test_names_are_checked_and_the_interval_is_positive(
    watcher: SecretWatcher, backend: ScriptedBackend
) -> None:
    with pytest.raises(ValidationError) as caught:
        watcher.subscribe(["ok", "../etc/passwd"])
    assert caught.value.field_violations[0].field == "names"
    assert watcher.watched_names == frozenset()
    with pytest.raises(ValueError, match="interval"):
        SecretWatcher(BackendChain([backend]), interval=0)
    with pytest.raises(ValueError, match="at least one"):
        SecretWatcher(BackendChain([backend]), max_concurrent_reads=0)


class _BrokenOnce:
    """A source whose first read fails with a bug rather than a taxonomy error."""

    def __init__(self, backend: ScriptedBackend) -> None:
        self.backend = backend
        self.broken = True

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        if self.broken:
            self.broken = False
            raise RuntimeError("bug")
        return await self.backend.get(name, version)


async def test_a_bug_in_a_read_is_logged_and_the_watch_goes_on(backend: ScriptedBackend) -> None:
    watcher = SecretWatcher(_BrokenOnce(backend))
    with capture_logs() as logs:
        subscription = watcher.subscribe(["api-key"])
        await watcher.drain()
    assert [event["event"] for event in logs] == ["secret watch read failed unexpectedly"]
    assert logs[0]["log_level"] == "error"
    await watcher.poll()
    assert (await anext(subscription)).version == _v("key-1")
    await watcher.aclose()


class _ManualSleep:
    """An injected sleep that ends only when the test says, recording what was asked."""

    def __init__(self) -> None:
        self.requests: list[float] = []
        self.sleeping = asyncio.Event()
        self._wake = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.requests.append(seconds)
        self.sleeping.set()
        await self._wake.wait()
        self._wake.clear()

    async def wake_and_wait_for_next_sleep(self) -> None:
        self.sleeping.clear()
        self._wake.set()
        await self.sleeping.wait()


class _SlowSource:
    """A chain whose every read takes `seconds` of the fake clock."""

    def __init__(self, chain: BackendChain, clock: FakeClock, seconds: float) -> None:
        self.chain, self.clock, self.seconds = chain, clock, seconds

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        self.clock.advance(self.seconds)
        return await self.chain.get(name, version)


async def test_the_poller_polls_every_interval_from_start_to_start(
    backend: ScriptedBackend, clock: FakeClock
) -> None:
    sleep = _ManualSleep()
    source = _SlowSource(BackendChain([backend], clock=clock), clock, seconds=3.0)
    watcher = SecretWatcher(source, interval=30.0, clock=clock, sleep=sleep)
    subscription = watcher.subscribe(["database-password"])
    await watcher.drain()
    assert len(_pending(subscription)) == 1
    async with watcher:
        await sleep.sleeping.wait()
        assert sleep.requests == [27.0]
        backend.secrets["database-password"] = "pw-2"
        await sleep.wake_and_wait_for_next_sleep()
        assert sleep.requests == [27.0, 27.0]
        assert (await anext(subscription)).version == _v("pw-2")
        assert backend.calls == 3
    assert [change async for change in subscription] == []
