"""The three quota stores keep one protocol, and two replicas share one set of counters.

Each test runs on the in-memory store, on Redis and on PostgreSQL. For Redis and PostgreSQL
it gets two independent store instances (two connection pools) over the same server, as
two replicas of the service would; the in-memory store is one process's, so both are one.
Tenant names and Redis key prefixes are unique per test: the database and Redis are shared.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from mainmast.db import DatabasePool
from mainmast.errors import RateLimitedError, UnavailableError
from mainmast.testing import running_in_ci
from mainmast_llm._limits import LimitKind, QuotaPolicy, TenantLimits, Window
from mainmast_llm._quota import TenantQuotas
from mainmast_llm._quota_postgres import QUOTA_COUNTERS, PostgresQuotaStore
from mainmast_llm._quota_redis import RedisQuotaStore
from mainmast_llm._quota_store import (
    Counter,
    CounterAdjustment,
    CounterCharge,
    MemoryQuotaStore,
    QuotaStore,
)
from mainmast_llm._quota_stores import open_quota_store

REDIS_URL_ENV = "MAINMAST_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = datetime(2026, 3, 14, 15, 9, 20, tzinfo=UTC).timestamp()
RACERS = 64


@dataclass(frozen=True)
class Replicas:
    """Two stores over one set of counters, and a tenant of this test alone."""

    first: QuotaStore
    second: QuotaStore
    tenant: str

    def counter(self, kind: LimitKind, now: float = NOW) -> Counter:
        return Counter.of(self.tenant, kind, kind.window(now))

    def quotas(self, limits: TenantLimits, clock: FakeClock) -> tuple[TenantQuotas, TenantQuotas]:
        policy = QuotaPolicy(default=limits)
        return (
            TenantQuotas(self.first, policy, clock=clock),
            TenantQuotas(self.second, policy, clock=clock),
        )


@dataclass
class FakeClock:
    """Wall time that moves only when a test says so."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_url() -> str:
    """The Redis of the tests (MAINMAST_TEST_REDIS_URL, or the local default), if it answers.

    Without it the test skips, or fails under CI=true, where Redis tests must run.
    """
    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    # A plain client: async fixtures cannot be asked for from inside `replicas`.
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except RedisConnectionError as exc:
        message = f"Redis is not reachable ({exc}); start it or set {REDIS_URL_ENV}"
        if running_in_ci():
            pytest.fail(f"{message} (CI=true: Redis tests must run)", pytrace=False)
        pytest.skip(message)
    finally:
        client.close()
    return url


async def _redis_pair(url: str) -> AsyncGenerator[tuple[QuotaStore, QuotaStore], None]:
    prefix = f"mainmast-test:{uuid.uuid4().hex}:"
    admin = aioredis.Redis.from_url(url)
    first = RedisQuotaStore.from_url(url, key_prefix=prefix)
    second = RedisQuotaStore.from_url(url, key_prefix=prefix)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
        keys = [key async for key in admin.scan_iter(match=f"{prefix}*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def _postgres_pair(url: str) -> AsyncGenerator[tuple[QuotaStore, QuotaStore], None]:
    # Small pools, so 64 racers queue for connections as they would under load.
    first = PostgresQuotaStore(DatabasePool(url, pool_size=8, max_overflow=0), owns_pool=True)
    second = PostgresQuotaStore(DatabasePool(url, pool_size=8, max_overflow=0), owns_pool=True)
    try:
        await first.create_tables()
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture(params=["memory", "redis", pytest.param("postgres", marks=pytest.mark.postgres)])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[Replicas]:
    """Two stores of the kind the parameter names, and a unique tenant."""
    tenant = f"tenant-{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        store = MemoryQuotaStore()
        yield Replicas(store, store, tenant)
        await store.close()
        return
    pairs = (
        _redis_pair(request.getfixturevalue("redis_url"))
        if request.param == "redis"
        else _postgres_pair(request.getfixturevalue("postgres_url"))
    )
    try:
        first, second = await anext(pairs)
        yield Replicas(first, second, tenant)
    finally:
        await pairs.aclose()


async def test_64_racing_reservations_never_overrun_a_budgets_last_tokens(
    replicas: Replicas,
) -> None:
    clock = FakeClock()
    first, second = replicas.quotas(TenantLimits(daily_tokens=10_000), clock)
    await first.reserve(replicas.tenant, estimated_tokens=9_900)

    async def race(index: int) -> bool:
        quotas = first if index % 2 else second
        try:
            await quotas.reserve(replicas.tenant, estimated_tokens=10)
        except RateLimitedError:
            return False
        return True

    outcomes = await asyncio.gather(*(race(index) for index in range(RACERS)))

    assert outcomes.count(True) == 10
    assert await replicas.first.used(replicas.counter(LimitKind.DAILY_TOKENS)) == 10_000


async def test_racing_reservations_of_unequal_size_count_exactly_what_they_were_granted(
    replicas: Replicas,
) -> None:
    clock = FakeClock()
    limits = TenantLimits(requests_per_minute=40, tokens_per_minute=1_000, daily_tokens=700)
    first, second = replicas.quotas(limits, clock)
    sizes = [7 + (index * 13) % 50 for index in range(RACERS)]

    async def race(index: int) -> int:
        quotas = first if index % 2 else second
        try:
            await quotas.reserve(replicas.tenant, estimated_tokens=sizes[index])
        except RateLimitedError:
            return 0
        return sizes[index]

    granted = [size for size in await asyncio.gather(*map(race, range(RACERS))) if size]

    daily = await replicas.second.used(replicas.counter(LimitKind.DAILY_TOKENS))
    requests = await replicas.second.used(replicas.counter(LimitKind.REQUESTS_PER_MINUTE))
    assert daily == sum(granted) <= 700
    assert requests == len(granted) <= 40
    assert await replicas.second.used(replicas.counter(LimitKind.TOKENS_PER_MINUTE)) == daily
    # Every size is under 57, so a refusal means the budget was within 57 of full.
    assert daily > 700 - 57


async def test_each_replica_sees_the_counts_of_the_other(replicas: Replicas) -> None:
    clock = FakeClock()
    first, second = replicas.quotas(TenantLimits(requests_per_minute=3), clock)
    await first.reserve(replicas.tenant, estimated_tokens=0)
    await second.reserve(replicas.tenant, estimated_tokens=0)
    await first.reserve(replicas.tenant, estimated_tokens=0)

    with pytest.raises(RateLimitedError):
        await second.reserve(replicas.tenant, estimated_tokens=0)

    counter = replicas.counter(LimitKind.REQUESTS_PER_MINUTE)
    assert await replicas.first.used(counter) == 3
    assert await replicas.second.used(counter) == 3


async def test_settling_on_one_replica_releases_and_charges_for_both(replicas: Replicas) -> None:
    clock = FakeClock()
    first, second = replicas.quotas(TenantLimits(tokens_per_minute=1_000, daily_tokens=600), clock)
    released = await first.reserve(replicas.tenant, estimated_tokens=500)
    await second.settle(released, actual_tokens=120)
    daily = replicas.counter(LimitKind.DAILY_TOKENS)
    assert await replicas.first.used(daily) == 120

    overrun = await second.reserve(replicas.tenant, estimated_tokens=400)
    await first.settle(overrun, actual_tokens=650)

    assert await replicas.second.used(daily) == 770
    assert await replicas.second.used(replicas.counter(LimitKind.TOKENS_PER_MINUTE)) == 770
    with pytest.raises(RateLimitedError) as refused:
        await first.reserve(replicas.tenant, estimated_tokens=0)
    assert refused.value.reason == "BUDGET_EXHAUSTED"


async def test_a_new_minute_counts_from_zero_and_old_windows_keep_their_settlements(
    replicas: Replicas,
) -> None:
    clock = FakeClock()
    first, second = replicas.quotas(TenantLimits(tokens_per_minute=100), clock)
    old = await first.reserve(replicas.tenant, estimated_tokens=100)
    with pytest.raises(RateLimitedError) as refused:
        await second.reserve(replicas.tenant, estimated_tokens=1)
    assert refused.value.retry_after is not None

    clock.now += refused.value.retry_after.total_seconds()
    await second.reserve(replicas.tenant, estimated_tokens=100)
    await first.settle(old, actual_tokens=30)

    assert await replicas.first.used(replicas.counter(LimitKind.TOKENS_PER_MINUTE, NOW)) == 30
    assert (
        await replicas.first.used(replicas.counter(LimitKind.TOKENS_PER_MINUTE, clock.now)) == 100
    )


async def test_a_charge_that_does_not_fit_adds_nothing_to_any_counter(replicas: Replicas) -> None:
    requests = replicas.counter(LimitKind.REQUESTS_PER_MINUTE)
    daily = replicas.counter(LimitKind.DAILY_TOKENS)
    monthly = replicas.counter(LimitKind.MONTHLY_TOKENS)
    charges = [
        CounterCharge(requests, amount=1, limit=5),
        CounterCharge(daily, amount=80, limit=100),
        CounterCharge(monthly, amount=80, limit=1_000),
    ]
    assert await replicas.first.reserve(charges, now=NOW) == ()

    failed = await replicas.second.reserve(charges, now=NOW)

    assert failed == (1,)
    assert [await replicas.first.used(c) for c in (requests, daily, monthly)] == [1, 80, 80]


async def test_every_charge_that_does_not_fit_is_reported(replicas: Replicas) -> None:
    tokens = replicas.counter(LimitKind.TOKENS_PER_MINUTE)
    daily = replicas.counter(LimitKind.DAILY_TOKENS)
    requests = replicas.counter(LimitKind.REQUESTS_PER_MINUTE)

    failed = await replicas.first.reserve(
        [
            CounterCharge(tokens, amount=10, limit=9),
            CounterCharge(requests, amount=1, limit=1),
            CounterCharge(daily, amount=10, limit=0),
        ],
        now=NOW,
    )

    assert failed == (0, 2)
    assert [await replicas.second.used(c) for c in (tokens, requests, daily)] == [0, 0, 0]


async def test_adjusting_floors_at_zero_and_leaves_uncharged_counters_alone(
    replicas: Replicas,
) -> None:
    charged = replicas.counter(LimitKind.DAILY_TOKENS)
    never_charged = replicas.counter(LimitKind.MONTHLY_TOKENS)
    await replicas.first.reserve([CounterCharge(charged, amount=50, limit=100)], now=NOW)

    await replicas.second.adjust(
        [CounterAdjustment(charged, -80), CounterAdjustment(never_charged, 40)], now=NOW
    )

    assert await replicas.first.used(charged) == 0
    assert await replicas.first.used(never_charged) == 0
    await replicas.first.adjust([CounterAdjustment(charged, 30)], now=NOW)
    assert await replicas.second.used(charged) == 30


async def test_tenants_do_not_share_counters(replicas: Replicas) -> None:
    today = LimitKind.DAILY_TOKENS.window(NOW)
    other = Counter.of(f"{replicas.tenant}-other", LimitKind.DAILY_TOKENS, today)
    mine = Counter.of(replicas.tenant, LimitKind.DAILY_TOKENS, today)

    await replicas.first.reserve([CounterCharge(mine, amount=5, limit=5)], now=NOW)

    assert await replicas.second.reserve([CounterCharge(other, amount=5, limit=5)], now=NOW) == ()
    assert await replicas.second.used(mine) == 5


async def test_the_memory_store_forgets_ended_windows() -> None:
    store = MemoryQuotaStore()
    window = LimitKind.TOKENS_PER_MINUTE.window(NOW)
    counter = Counter.of("acme", LimitKind.TOKENS_PER_MINUTE, window)
    await store.reserve([CounterCharge(counter, amount=5, limit=10)], now=NOW)

    await store.reserve([], now=window.end + 60)

    assert await store.used(counter) == 0
    assert repr(store) == "MemoryQuotaStore(counters=0)"


@pytest.mark.postgres
async def test_postgres_purges_rows_of_windows_that_ended_over_a_minute_ago(
    postgres_url: str,
) -> None:
    store = PostgresQuotaStore.from_url(postgres_url)
    tenant = f"tenant-{uuid.uuid4().hex[:12]}"
    try:
        await store.create_tables()
        ended = Counter.of(tenant, LimitKind.TOKENS_PER_MINUTE, Window(0, 60))
        current = Counter.of(tenant, LimitKind.DAILY_TOKENS, LimitKind.DAILY_TOKENS.window(NOW))
        await store.reserve(
            [CounterCharge(ended, amount=5, limit=10), CounterCharge(current, amount=5, limit=10)],
            now=30,
        )
        assert await store.used(ended) == 5

        assert await store.purge_expired(now=NOW) >= 1

        assert await store.used(ended) == 0
        assert await store.used(current) == 5
    finally:
        await store.close()


def test_the_postgres_store_refuses_a_sqlite_database(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="needs a PostgreSQL database"):
        PostgresQuotaStore(DatabasePool(sqlite_url))


def test_the_counters_table_is_keyed_by_tenant_limit_and_window() -> None:
    assert [column.name for column in QUOTA_COUNTERS.primary_key] == [
        "tenant",
        "limit_kind",
        "window_start",
    ]


async def test_an_unreachable_redis_is_unavailable_not_a_crash() -> None:
    # Port 1 on loopback refuses connections at once.
    store = RedisQuotaStore.from_url("redis://127.0.0.1:1/0", key_prefix="unused:")
    counter = Counter.of("acme", LimitKind.DAILY_TOKENS, Window(0, 86_400))
    try:
        with pytest.raises(UnavailableError) as failure:
            await store.reserve([CounterCharge(counter, amount=1, limit=1)], now=NOW)
    finally:
        await store.close()

    assert failure.value.reason == "QUOTA_STORE_UNAVAILABLE"


@pytest.mark.parametrize("url", [None, "", "memory://"])
async def test_no_store_url_means_counting_in_memory(url: str | None) -> None:
    store = await open_quota_store(url)

    assert isinstance(store, MemoryQuotaStore)


async def test_a_redis_url_opens_a_redis_store_under_the_given_prefix(redis_url: str) -> None:
    prefix = f"mainmast-test:{uuid.uuid4().hex}:"
    store = await open_quota_store(redis_url, redis_key_prefix=prefix)
    counter = Counter.of("acme", LimitKind.DAILY_TOKENS, LimitKind.DAILY_TOKENS.window(NOW))
    try:
        assert isinstance(store, RedisQuotaStore)
        assert store.key(counter).startswith(prefix)
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_postgres_url_opens_a_postgres_store_with_its_table(postgres_url: str) -> None:
    store = await open_quota_store(postgres_url)
    counter = Counter.of(
        f"tenant-{uuid.uuid4().hex[:12]}", LimitKind.DAILY_TOKENS, Window(0, 86_400)
    )
    try:
        assert isinstance(store, PostgresQuotaStore)
        assert await store.used(counter) == 0
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["mysql://root:hunter2@db/quota", "127.0.0.1:6379"])
async def test_an_unknown_store_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ValueError, match="unknown scheme") as refused:
        await open_quota_store(url)

    assert "hunter2" not in str(refused.value)
