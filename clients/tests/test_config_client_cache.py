"""The config client's cache: values kept up to their TTL and bound, one load per key however
many readers, failures shared and never kept, and loads overtaken by newer values."""

from __future__ import annotations

import asyncio

import pytest

from mainmast.config._client_cache import SingleFlightCache


class ManualClock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """Loads that wait at a gate and count themselves."""

    def __init__(self) -> None:
        self.loads = 0
        self.gate = asyncio.Event()
        self.value = "v1"
        self.ttl: float | None = None
        self.error: Exception | None = None

    async def load(self) -> tuple[str, float | None]:
        self.loads += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.value, self.ttl


async def test_many_readers_of_a_missing_key_share_one_load() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(ttl_seconds=60, max_entries=10)
    source = Source()
    readers = [asyncio.create_task(cache.get("k", source.load)) for _ in range(100)]
    await asyncio.sleep(0)
    assert cache.loads_in_flight == 1
    source.gate.set()

    assert set(await asyncio.gather(*readers)) == {"v1"}
    assert source.loads == 1
    assert await cache.get("k", source.load) == "v1"
    assert source.loads == 1


async def test_a_value_lives_for_the_shorter_of_its_own_ttl_and_the_caches() -> None:
    clock = ManualClock()
    cache: SingleFlightCache[str, str] = SingleFlightCache(
        ttl_seconds=60, max_entries=10, clock=clock
    )
    source = Source()
    source.gate.set()
    source.ttl = 5
    await cache.get("k", source.load)
    clock.now += 4
    await cache.get("k", source.load)
    clock.now += 1
    await cache.get("k", source.load)
    source.ttl = 0  # a stale answer of the service: not kept at all
    clock.now += 5
    await cache.get("k", source.load)
    await cache.get("k", source.load)

    assert source.loads == 4
    assert cache.peek("k") is None


async def test_a_failure_reaches_every_reader_and_is_not_kept() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(ttl_seconds=60, max_entries=10)
    source = Source()
    source.error = RuntimeError("down")
    readers = [asyncio.create_task(cache.get("k", source.load)) for _ in range(3)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*readers, return_exceptions=True)

    assert [type(result) for result in results] == [RuntimeError] * 3
    source.error = None
    assert await cache.get("k", source.load) == "v1"
    assert source.loads == 2


async def test_a_reader_that_gives_up_does_not_cancel_the_others() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(ttl_seconds=60, max_entries=10)
    source = Source()
    impatient = asyncio.create_task(cache.get("k", source.load))
    patient = asyncio.create_task(cache.get("k", source.load))
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    source.gate.set()

    assert await patient == "v1"
    assert impatient.cancelled()
    assert cache.peek("k") == "v1"


async def test_a_value_put_during_a_load_overtakes_it() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(ttl_seconds=60, max_entries=10)
    source = Source()
    reader = asyncio.create_task(cache.get("k", source.load))
    await asyncio.sleep(0)
    cache.put("k", "v2")
    source.gate.set()

    assert await reader == "v1"  # what the reader asked for when it asked
    assert cache.peek("k") == "v2"  # but the newer value stays
    cache.discard("k")
    later = asyncio.create_task(cache.get("k", source.load))
    await asyncio.sleep(0)
    cache.clear()
    assert await later == "v1"
    assert cache.peek("k") is None
    assert len(cache) == 0


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (60, 0)])
async def test_a_cache_of_no_time_or_no_room_keeps_nothing_but_still_shares_loads(
    ttl: float, size: int
) -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(ttl_seconds=ttl, max_entries=size)
    source = Source()
    readers = [asyncio.create_task(cache.get("k", source.load)) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    await asyncio.gather(*readers)

    assert source.loads == 1
    assert cache.peek("k") is None


async def test_the_least_recently_used_value_goes_past_the_bound() -> None:
    cache: SingleFlightCache[str, str] = SingleFlightCache(ttl_seconds=60, max_entries=2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.peek("a") == "1"
    cache.put("c", "3")

    assert (cache.peek("a"), cache.peek("b"), cache.peek("c")) == ("1", None, "3")
