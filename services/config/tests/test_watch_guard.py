"""The invalidate race: a cache read in flight across a rotation must not store the old value."""

from __future__ import annotations

import asyncio

import pytest

from mainmast.errors import NotFoundError
from mainmast_config._backend import BackendKind, SecretRecord, digest_version
from mainmast_config._cache import CacheState, SecretCache
from mainmast_config._chain import BackendChain
from mainmast_config._errors import secret_not_found
from mainmast_config._testing import FakeClock, ScriptedBackend
from mainmast_config._watch import SecretWatcher
from mainmast_config._watch_guard import ReadGuard


class _HeldAfterReading:
    """A source whose next read takes the value, then waits to be released before answering:
    a read that was in flight while the secret rotated."""

    def __init__(self, chain: BackendChain) -> None:
        self.chain = chain
        self.hold_next = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.reads = 0

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        self.reads += 1
        record = await self.chain.get(name, version)
        if self.hold_next:
            self.hold_next = False
            self.holding.set()
            await self.release.wait()
        return record


async def _rotate_during_a_cache_read(
    clock: FakeClock, *, guarded: bool
) -> tuple[str, SecretCache, _HeldAfterReading]:
    """Start a cache read, rotate the secret while it is in flight, let the watcher see the
    rotation, then let the read finish; the value the read answered."""
    backend = ScriptedBackend(BackendKind.KEY_VAULT, {"database-password": "pw-1"})
    chain = BackendChain([backend], clock=clock)
    held = _HeldAfterReading(chain)
    guard = ReadGuard(held) if guarded else None
    cache = SecretCache(guard or held, clock=clock, wall_clock=clock.wall)
    watcher = SecretWatcher(chain, cache=cache, read_guard=guard, clock=clock)
    subscription = watcher.subscribe(["database-password"])
    await watcher.drain()
    held.hold_next = True
    reader = asyncio.create_task(cache.get("database-password"))
    await held.holding.wait()  # the read has the old value in hand
    joined = asyncio.create_task(cache.get("database-password"))  # single-flight: joins it
    backend.secrets["database-password"] = "pw-2"
    await watcher.poll()
    # The first version, unread, was coalesced into the second: subscribers hear of pw-2.
    assert (await anext(subscription)).version == digest_version("pw-2")
    assert subscription.pending == 0
    held.release.set()
    answered = (await reader).record.value
    assert (await joined).record.value == answered
    await watcher.aclose()
    return answered, cache, held


async def test_through_the_guard_a_read_in_flight_across_a_rotation_answers_the_new_value(
    clock: FakeClock,
) -> None:
    answered, cache, held = await _rotate_during_a_cache_read(clock, guarded=True)
    assert answered == "pw-2"
    after = await cache.get("database-password")
    assert (after.record.value, after.state) == ("pw-2", CacheState.HIT)
    assert held.reads == 2  # the overtaken read, and the one read again after the change


async def test_without_the_guard_the_old_value_would_be_cached(clock: FakeClock) -> None:
    # The race the guard exists for, shown: invalidation alone lets the old value in.
    answered, cache, _ = await _rotate_during_a_cache_read(clock, guarded=False)
    assert answered == "pw-1"
    after = await cache.get("database-password")
    assert (after.record.value, after.state) == ("pw-1", CacheState.HIT)


class _NotFoundThenHeld:
    """A source whose first read finds nothing, then waits to be released before saying so."""

    def __init__(self, backend: ScriptedBackend) -> None:
        self.backend = backend
        self.first = True
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        if self.first:
            self.first = False
            error = secret_not_found(name)
            self.holding.set()
            await self.release.wait()
            raise error
        return await self.backend.get(name, version)


async def _recreate_during_a_read(*, changed: bool) -> SecretRecord:
    backend = ScriptedBackend(BackendKind.KEY_VAULT, {})
    source = _NotFoundThenHeld(backend)
    guard = ReadGuard(source)
    read = asyncio.create_task(guard.get("api-key"))
    await source.holding.wait()
    backend.secrets["api-key"] = "key-1"
    if changed:
        guard.changed("api-key")
    source.release.set()
    return await read


async def test_a_not_found_read_in_flight_across_a_recreation_reads_again() -> None:
    record = await _recreate_during_a_read(changed=True)
    assert record.value == "key-1"


async def test_a_not_found_read_with_no_change_reported_answers_not_found() -> None:
    with pytest.raises(NotFoundError):
        await _recreate_during_a_read(changed=False)


async def test_reads_of_a_pinned_version_pass_through_and_nothing_is_kept(clock: FakeClock) -> None:
    backend = ScriptedBackend(BackendKind.ENVIRONMENT, {"api-key": "key-1"})
    guard = ReadGuard(BackendChain([backend], clock=clock))
    latest = await guard.get("api-key")
    guard.changed("api-key")  # no read in flight: nothing to mark
    pinned = await guard.get("api-key", latest.version)
    assert (pinned.value, backend.calls) == ("key-1", 2)
    assert guard._in_flight == {}  # bounded: nothing is kept between reads
