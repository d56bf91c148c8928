"""The secret cache, under injected faults and a clock that moves only when told to."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from mainmast.errors import NotFoundError, UnavailableError, ValidationError
from mainmast_config._backend import BackendKind
from mainmast_config._cache import CacheOptions, CacheState, SecretCache
from mainmast_config._chain import BackendChain
from mainmast_config._errors import backend_access_denied, backend_throttled, backend_unavailable
from mainmast_config._testing import WALL_CLOCK_START, FakeClock, ScriptedBackend

VAULT = BackendKind.KEY_VAULT


def _cache(clock: FakeClock, backend: ScriptedBackend, **options: object) -> SecretCache:
    return SecretCache(
        backend,
        CacheOptions(**options),  # type: ignore[arg-type]
        clock=clock,
        wall_clock=clock.wall,
    )


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(VAULT, {"database-password": "v1", "api-key": "k1"})


async def test_a_miss_reads_the_backend_then_hits_until_the_ttl_ends(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend)
    first = await cache.get("database-password")
    assert (first.record.value, first.state, first.ttl) == ("v1", CacheState.MISS, 300.0)
    assert first.fetch_time == datetime.fromtimestamp(WALL_CLOCK_START + clock.now, UTC)
    clock.advance(100)
    second = await cache.get("database-password")
    assert (second.state, second.ttl, second.fetch_time) == (
        CacheState.HIT,
        200.0,
        first.fetch_time,
    )
    assert backend.calls == 1
    backend.secrets["database-password"] = "v2"
    clock.advance(200)
    third = await cache.get("database-password")
    assert (third.record.value, third.state) == ("v2", CacheState.MISS)
    assert backend.calls == 2


async def test_a_name_can_have_its_own_ttl(clock: FakeClock, backend: ScriptedBackend) -> None:
    cache = _cache(clock, backend, ttl_overrides={"api-key": 10.0})
    assert (await cache.get("api-key")).ttl == 10.0
    assert (await cache.get("database-password")).ttl == 300.0
    clock.advance(11)
    assert (await cache.get("api-key")).state == CacheState.MISS
    assert (await cache.get("database-password")).state == CacheState.HIT


async def test_near_expiry_the_entry_answers_while_one_background_read_refreshes_it(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend, ttl=100.0, refresh_ahead=0.2)
    await cache.get("database-password")
    clock.advance(79)
    assert (await cache.get("database-password")).state == CacheState.HIT
    clock.advance(2)
    backend.secrets["database-password"] = "v2"
    answers = [await cache.get("database-password") for _ in range(5)]
    assert {(answer.record.value, answer.state) for answer in answers} == {
        ("v1", CacheState.STALE_WHILE_REVALIDATE)
    }
    await cache.drain()
    assert backend.calls == 2
    refreshed = await cache.get("database-password")
    assert (refreshed.record.value, refreshed.state, refreshed.ttl) == (
        "v2",
        CacheState.HIT,
        100.0,
    )


async def test_a_failed_background_refresh_keeps_the_entry(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend, ttl=100.0, refresh_ahead=0.2, error_retry_interval=5.0)
    await cache.get("database-password")
    clock.advance(90)
    backend.fail_next(backend_unavailable(VAULT, "down"))
    assert (await cache.get("database-password")).state == CacheState.STALE_WHILE_REVALIDATE
    await cache.drain()
    # Within the error retry interval no new refresh starts.
    assert (await cache.get("database-password")).record.value == "v1"
    await cache.drain()
    assert backend.calls == 2
    clock.advance(5)
    await cache.get("database-password")
    await cache.drain()
    assert backend.calls == 3


@pytest.mark.parametrize(
    "error",
    [
        backend_unavailable(VAULT, "connection refused"),
        backend_throttled(VAULT, retry_after=None),
        backend_access_denied(VAULT, "HTTP 403"),
    ],
)
async def test_an_expired_entry_answers_when_the_backend_fails(
    clock: FakeClock, backend: ScriptedBackend, error: Exception
) -> None:
    cache = _cache(clock, backend, error_retry_interval=5.0)
    await cache.get("database-password")
    clock.advance(301)
    backend.fail_next(error, count=100)
    stale = await cache.get("database-password")
    assert (stale.record.value, stale.state, stale.ttl) == ("v1", CacheState.STALE_IF_ERROR, 0.0)
    assert backend.calls == 2
    # Within the error retry interval, stale answers come without asking the backend.
    clock.advance(4)
    assert (await cache.get("database-password")).state == CacheState.STALE_IF_ERROR
    assert backend.calls == 2
    clock.advance(1)
    assert (await cache.get("database-password")).state == CacheState.STALE_IF_ERROR
    assert backend.calls == 3


async def test_stale_answers_stop_at_the_maximum_staleness(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend, ttl=10.0, max_staleness=60.0, error_retry_interval=0.0)
    await cache.get("database-password")
    backend.fail_next(backend_unavailable(VAULT, "down"), count=100)
    clock.advance(70)
    assert (await cache.get("database-password")).state == CacheState.STALE_IF_ERROR
    clock.advance(0.5)
    with pytest.raises(UnavailableError) as caught:
        await cache.get("database-password")
    assert caught.value.reason == "BACKEND_UNAVAILABLE"


async def test_a_throttled_backend_is_not_asked_again_before_its_retry_after(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend, error_retry_interval=5.0)
    await cache.get("database-password")
    clock.advance(301)
    backend.fail_next(backend_throttled(VAULT, retry_after=60))
    assert (await cache.get("database-password")).state == CacheState.STALE_IF_ERROR
    for _ in range(59):
        clock.advance(1)
        assert (await cache.get("database-password")).state == CacheState.STALE_IF_ERROR
    assert backend.calls == 2
    clock.advance(1)
    fresh = await cache.get("database-password")
    assert (fresh.state, backend.calls) == (CacheState.MISS, 3)


async def test_the_chains_hold_off_keeps_other_names_off_a_throttled_backend(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = SecretCache(BackendChain([backend], clock=clock), clock=clock, wall_clock=clock.wall)
    backend.fail_next(backend_throttled(VAULT, retry_after=30))
    with pytest.raises(UnavailableError):
        await cache.get("database-password")
    with pytest.raises(UnavailableError) as caught:
        await cache.get("api-key")
    assert caught.value.reason == "BACKEND_THROTTLED"
    assert backend.calls == 1


async def test_without_an_entry_the_backends_error_is_raised(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend)
    backend.fail_next(backend_unavailable(VAULT, "down"))
    with pytest.raises(UnavailableError):
        await cache.get("database-password")
    assert (await cache.get("database-password")).state == CacheState.MISS


async def test_not_found_is_remembered_briefly(clock: FakeClock, backend: ScriptedBackend) -> None:
    cache = _cache(clock, backend, negative_ttl=5.0)
    for _ in range(3):
        with pytest.raises(NotFoundError) as caught:
            await cache.get("missing")
        assert caught.value.reason == "SECRET_NOT_FOUND"
    assert backend.calls == 1
    backend.secrets["missing"] = "now-here"
    clock.advance(5)
    assert (await cache.get("missing")).record.value == "now-here"
    assert backend.calls == 2


async def test_a_zero_negative_ttl_remembers_no_not_found(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend, negative_ttl=0.0)
    for _ in range(3):
        with pytest.raises(NotFoundError):
            await cache.get("missing")
    assert backend.calls == 3


async def test_a_deleted_secret_is_not_found_not_stale(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend)
    await cache.get("database-password")
    del backend.secrets["database-password"]
    clock.advance(301)
    with pytest.raises(NotFoundError):
        await cache.get("database-password")


async def test_an_invalid_name_is_neither_cached_nor_answered_stale(clock: FakeClock) -> None:
    backend = ScriptedBackend(VAULT, {"a": "1"})
    cache = SecretCache(BackendChain([backend]), clock=clock, wall_clock=clock.wall)
    for _ in range(2):
        with pytest.raises(ValidationError):
            await cache.get("../a")
    assert len(cache) == 0


async def test_versions_are_cached_apart(clock: FakeClock, backend: ScriptedBackend) -> None:
    cache = _cache(clock, backend)
    latest = await cache.get("database-password")
    pinned = await cache.get("database-password", latest.record.version)
    assert pinned.state == CacheState.MISS
    assert (await cache.get("database-password", "")).state == CacheState.HIT


async def test_the_least_recently_used_entry_goes_past_the_bound(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    backend.secrets.update({"c": "3"})
    cache = _cache(clock, backend, max_entries=2)
    await cache.get("database-password")
    await cache.get("api-key")
    await cache.get("database-password")
    await cache.get("c")
    assert len(cache) == 2
    assert (await cache.get("database-password")).state == CacheState.HIT
    assert (await cache.get("api-key")).state == CacheState.MISS


async def test_invalidate_forgets_every_version_of_a_name(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend)
    latest = await cache.get("database-password")
    await cache.get("database-password", latest.record.version)
    await cache.get("api-key")
    cache.invalidate("database-password")
    assert len(cache) == 1
    assert (await cache.get("database-password")).state == CacheState.MISS


async def test_a_thousand_concurrent_misses_make_one_backend_call(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend)
    backend.gate = asyncio.Event()
    readers = [asyncio.create_task(cache.get("database-password")) for _ in range(1000)]
    await asyncio.sleep(0)
    backend.gate.set()
    answers = await asyncio.gather(*readers)
    assert backend.calls == 1
    assert {(answer.record.value, answer.state) for answer in answers} == {("v1", CacheState.MISS)}


async def test_concurrent_misses_share_one_failure(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend)
    backend.gate = asyncio.Event()
    backend.fail_next(backend_unavailable(VAULT, "down"))
    readers = [asyncio.create_task(cache.get("database-password")) for _ in range(100)]
    await asyncio.sleep(0)
    backend.gate.set()
    outcomes = await asyncio.gather(*readers, return_exceptions=True)
    assert backend.calls == 1
    assert all(isinstance(outcome, UnavailableError) for outcome in outcomes)


async def test_a_cancelled_reader_does_not_cancel_the_read_the_others_wait_for(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend)
    backend.gate = asyncio.Event()
    impatient = asyncio.create_task(cache.get("database-password"))
    patient = asyncio.create_task(cache.get("database-password"))
    await asyncio.sleep(0)
    impatient.cancel()
    backend.gate.set()
    assert (await patient).record.value == "v1"
    assert impatient.cancelled()
    assert backend.calls == 1


async def test_closing_stops_reads_in_flight(clock: FakeClock, backend: ScriptedBackend) -> None:
    cache = _cache(clock, backend, ttl=100.0, refresh_ahead=0.5)
    await cache.get("database-password")
    backend.gate = asyncio.Event()
    clock.advance(60)
    assert (await cache.get("database-password")).state == CacheState.STALE_WHILE_REVALIDATE
    await asyncio.sleep(0)
    await cache.aclose()
    await cache.drain()
    assert backend.calls == 2
    assert (await cache.get("database-password")).record.value == "v1"


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": 0.0},
        {"ttl_overrides": {"a": -1.0}},
        {"refresh_ahead": 1.0},
        {"max_staleness": -1.0},
        {"max_entries": 0},
    ],
)
def test_options_out_of_range_are_rejected(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="cache"):
        CacheOptions(**options)  # type: ignore[arg-type]


def test_ttl_overrides_apply_by_exact_name() -> None:
    options = CacheOptions(ttl=30.0, ttl_overrides={"a": 5.0})
    assert (options.ttl_of("a"), options.ttl_of("a/b")) == (5.0, 30.0)
    assert timedelta(seconds=options.max_staleness) == timedelta(hours=24)


async def test_an_unexpected_failure_of_a_background_refresh_is_logged(
    clock: FakeClock, backend: ScriptedBackend
) -> None:
    cache = _cache(clock, backend, ttl=100.0, refresh_ahead=0.5)
    await cache.get("database-password")
    clock.advance(60)
    backend.fail_next(KeyError("bug"))
    with capture_logs() as logs:
        assert (await cache.get("database-password")).state == CacheState.STALE_WHILE_REVALIDATE
        await cache.drain()
    assert [(log["event"], log["secret_name"]) for log in logs] == [
        ("secret read failed unexpectedly", "database-password")
    ]
