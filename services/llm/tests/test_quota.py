"""TenantQuotas on the in-memory store: reserving, settling, windows and the errors it raises.

The same behaviour on Redis and PostgreSQL, across two store instances, is in
test_quota_stores.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from mainmast.errors import QuotaViolation, RateLimitedError, status_from_error
from mainmast.llm import LLM_ERROR_DOMAIN
from mainmast_llm._completion import ChatMessage, CompletionRequest, Role
from mainmast_llm._limits import LimitKind, QuotaPolicy, TenantLimits
from mainmast_llm._quota import (
    DEFAULT_COMPLETION_TOKENS,
    TenantQuotas,
    estimate_tokens,
)
from mainmast_llm._quota_store import Counter, MemoryQuotaStore

START = datetime(2026, 3, 14, 15, 9, 20, tzinfo=UTC).timestamp()
"""40 seconds before a minute ends, on a day and month with hours left."""


@dataclass
class FakeClock:
    """Wall time that moves only when a test says so."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _quotas(limits: TenantLimits, clock: FakeClock) -> TenantQuotas:
    return TenantQuotas(MemoryQuotaStore(), QuotaPolicy(default=limits), clock=clock)


async def _used(quotas: TenantQuotas, tenant: str, kind: LimitKind, now: float) -> int:
    return await quotas.store.used(Counter.of(tenant, kind, kind.window(now)))


async def test_a_reservation_counts_one_request_and_the_estimate_against_every_limit() -> None:
    clock = FakeClock()
    quotas = _quotas(
        TenantLimits(
            requests_per_minute=10, tokens_per_minute=1000, daily_tokens=5000, monthly_tokens=9000
        ),
        clock,
    )

    await quotas.reserve("acme", estimated_tokens=300)

    assert await _used(quotas, "acme", LimitKind.REQUESTS_PER_MINUTE, clock.now) == 1
    for kind in (LimitKind.TOKENS_PER_MINUTE, LimitKind.DAILY_TOKENS, LimitKind.MONTHLY_TOKENS):
        assert await _used(quotas, "acme", kind, clock.now) == 300
    assert await _used(quotas, "globex", LimitKind.DAILY_TOKENS, clock.now) == 0


async def test_requests_beyond_the_per_minute_limit_wait_for_the_next_minute() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(requests_per_minute=2), clock)
    await quotas.reserve("acme", estimated_tokens=10)
    await quotas.reserve("acme", estimated_tokens=10)

    with pytest.raises(RateLimitedError) as refused:
        await quotas.reserve("acme", estimated_tokens=10)

    assert refused.value.retry_after == timedelta(seconds=40)
    assert refused.value.reason == "REQUESTS_PER_MINUTE_EXCEEDED"
    clock.advance(40)
    await quotas.reserve("acme", estimated_tokens=10)
    assert await _used(quotas, "acme", LimitKind.REQUESTS_PER_MINUTE, clock.now) == 1


async def test_retry_after_rounds_a_part_second_up() -> None:
    clock = FakeClock(now=START + 0.25)
    quotas = _quotas(TenantLimits(tokens_per_minute=100), clock)
    await quotas.reserve("acme", estimated_tokens=100)

    with pytest.raises(RateLimitedError) as refused:
        await quotas.reserve("acme", estimated_tokens=1)

    assert refused.value.retry_after == timedelta(seconds=40)


async def test_a_refused_reservation_counts_nothing() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(requests_per_minute=5, daily_tokens=100), clock)
    await quotas.reserve("acme", estimated_tokens=90)

    with pytest.raises(RateLimitedError):
        await quotas.reserve("acme", estimated_tokens=20)

    assert await _used(quotas, "acme", LimitKind.REQUESTS_PER_MINUTE, clock.now) == 1
    assert await _used(quotas, "acme", LimitKind.DAILY_TOKENS, clock.now) == 90
    await quotas.reserve("acme", estimated_tokens=10)


async def test_a_spent_daily_budget_stays_spent_until_midnight_utc() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(tokens_per_minute=1000, daily_tokens=500), clock)
    await quotas.reserve("acme", estimated_tokens=500)
    clock.advance(60)
    midnight = datetime(2026, 3, 15, tzinfo=UTC).timestamp()

    with pytest.raises(RateLimitedError) as refused:
        await quotas.reserve("acme", estimated_tokens=1)

    assert refused.value.retry_after == timedelta(seconds=math.ceil(midnight - clock.now))
    assert refused.value.reason == "BUDGET_EXHAUSTED"
    assert refused.value.metadata == {"tenant": "acme", "limit": "500", "period": "daily"}
    clock.now = midnight
    await quotas.reserve("acme", estimated_tokens=1)


async def test_a_spent_monthly_budget_names_its_period_and_resets_on_the_first() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(daily_tokens=1000, monthly_tokens=50), clock)
    await quotas.reserve("acme", estimated_tokens=50)
    first_of_april = datetime(2026, 4, 1, tzinfo=UTC).timestamp()

    with pytest.raises(RateLimitedError) as refused:
        await quotas.reserve("acme", estimated_tokens=1)

    assert refused.value.metadata["period"] == "monthly"
    assert refused.value.retry_after == timedelta(seconds=math.ceil(first_of_april - clock.now))
    clock.now = first_of_april
    await quotas.reserve("acme", estimated_tokens=50)


async def test_every_limit_passed_is_a_violation_and_the_latest_reset_decides_retry() -> None:
    clock = FakeClock()
    quotas = _quotas(
        TenantLimits(requests_per_minute=100, tokens_per_minute=100, daily_tokens=150), clock
    )
    await quotas.reserve("acme", estimated_tokens=100)

    with pytest.raises(RateLimitedError) as refused:
        await quotas.reserve("acme", estimated_tokens=60)

    error = refused.value
    assert error.quota_violations == (
        QuotaViolation("tenant:acme", "100 tokens per minute"),
        QuotaViolation("tenant:acme", "150 tokens per UTC day"),
    )
    assert error.reason == "BUDGET_EXHAUSTED"
    assert error.domain == LLM_ERROR_DOMAIN
    midnight = datetime(2026, 3, 15, tzinfo=UTC).timestamp()
    assert error.retry_after == timedelta(seconds=math.ceil(midnight - clock.now))
    assert "acme" in error.message
    assert "100 tokens per minute" in error.message


async def test_the_error_travels_as_resource_exhausted_with_quota_failure_and_retry_info() -> None:
    from google.rpc import error_details_pb2, status_pb2  # noqa: PLC0415 - wire types

    clock = FakeClock()
    quotas = _quotas(TenantLimits(tokens_per_minute=10), clock)
    await quotas.reserve("acme", estimated_tokens=10)
    with pytest.raises(RateLimitedError) as refused:
        await quotas.reserve("acme", estimated_tokens=1)

    status = status_from_error(refused.value)

    rich = status_pb2.Status()
    rich.ParseFromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    details = {detail.type_url.rsplit("/", 1)[-1]: detail for detail in rich.details}
    quota_failure = error_details_pb2.QuotaFailure()
    details["google.rpc.QuotaFailure"].Unpack(quota_failure)
    retry_info = error_details_pb2.RetryInfo()
    details["google.rpc.RetryInfo"].Unpack(retry_info)
    assert status.code.name == "RESOURCE_EXHAUSTED"
    assert [(v.subject, v.description) for v in quota_failure.violations] == [
        ("tenant:acme", "10 tokens per minute")
    ]
    assert retry_info.retry_delay.seconds == 40


async def test_an_estimate_larger_than_a_limit_is_refused_without_retry_after() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(tokens_per_minute=100), clock)

    with pytest.raises(RateLimitedError) as refused:
        await quotas.reserve("acme", estimated_tokens=101)

    assert refused.value.retry_after is None
    assert refused.value.reason == "TOKENS_PER_MINUTE_EXCEEDED"
    assert await _used(quotas, "acme", LimitKind.TOKENS_PER_MINUTE, clock.now) == 0


async def test_settling_below_the_estimate_gives_the_difference_back() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(tokens_per_minute=1000, daily_tokens=1000), clock)
    reservation = await quotas.reserve("acme", estimated_tokens=800)

    await quotas.settle(reservation, actual_tokens=300)

    assert await _used(quotas, "acme", LimitKind.TOKENS_PER_MINUTE, clock.now) == 300
    assert await _used(quotas, "acme", LimitKind.DAILY_TOKENS, clock.now) == 300
    await quotas.reserve("acme", estimated_tokens=700)


async def test_settling_above_the_estimate_charges_the_overrun_even_past_the_limit() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(requests_per_minute=10, daily_tokens=500), clock)
    reservation = await quotas.reserve("acme", estimated_tokens=400)

    await quotas.settle(reservation, actual_tokens=650)

    assert await _used(quotas, "acme", LimitKind.DAILY_TOKENS, clock.now) == 650
    assert await _used(quotas, "acme", LimitKind.REQUESTS_PER_MINUTE, clock.now) == 1
    with pytest.raises(RateLimitedError):
        await quotas.reserve("acme", estimated_tokens=0)


async def test_a_failed_call_settles_to_zero_and_keeps_its_request_counted() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(requests_per_minute=10, tokens_per_minute=500), clock)
    reservation = await quotas.reserve("acme", estimated_tokens=500)

    await quotas.settle(reservation, actual_tokens=0)

    assert await _used(quotas, "acme", LimitKind.TOKENS_PER_MINUTE, clock.now) == 0
    assert await _used(quotas, "acme", LimitKind.REQUESTS_PER_MINUTE, clock.now) == 1


async def test_a_reservation_settles_into_the_window_it_was_taken_from() -> None:
    clock = FakeClock()
    quotas = _quotas(TenantLimits(tokens_per_minute=1000), clock)
    reservation = await quotas.reserve("acme", estimated_tokens=600)
    taken_at = clock.now
    clock.advance(45)
    await quotas.reserve("acme", estimated_tokens=100)

    await quotas.settle(reservation, actual_tokens=200)

    assert await _used(quotas, "acme", LimitKind.TOKENS_PER_MINUTE, taken_at) == 200
    assert await _used(quotas, "acme", LimitKind.TOKENS_PER_MINUTE, clock.now) == 100


async def test_settling_twice_is_refused() -> None:
    quotas = _quotas(TenantLimits(daily_tokens=100), FakeClock())
    reservation = await quotas.reserve("acme", estimated_tokens=50)
    await quotas.settle(reservation, actual_tokens=10)

    with pytest.raises(RuntimeError, match="already settled"):
        await quotas.settle(reservation, actual_tokens=10)


async def test_a_tenant_without_limits_is_never_refused() -> None:
    quotas = TenantQuotas(
        MemoryQuotaStore(),
        QuotaPolicy(tenants={"acme": TenantLimits(requests_per_minute=0)}),
        clock=FakeClock(),
    )

    reservation = await quotas.reserve("globex", estimated_tokens=10**9)
    await quotas.settle(reservation, actual_tokens=10**9)
    with pytest.raises(RateLimitedError):
        await quotas.reserve("acme", estimated_tokens=0)


@pytest.mark.parametrize(
    ("tenant", "estimate", "message"),
    [("", 1, "needs a tenant"), ("acme", -1, "estimated_tokens must be >= 0")],
)
async def test_reserve_refuses_bad_arguments(tenant: str, estimate: int, message: str) -> None:
    quotas = _quotas(TenantLimits(), FakeClock())

    with pytest.raises(ValueError, match=message):
        await quotas.reserve(tenant, estimated_tokens=estimate)


async def test_settle_refuses_negative_usage() -> None:
    quotas = _quotas(TenantLimits(), FakeClock())
    reservation = await quotas.reserve("acme", estimated_tokens=1)

    with pytest.raises(ValueError, match="actual_tokens must be >= 0"):
        await quotas.settle(reservation, actual_tokens=-1)


def test_the_estimate_is_the_prompt_at_four_characters_a_token_plus_max_tokens() -> None:
    request = CompletionRequest(
        messages=(
            ChatMessage(Role.USER, "a" * 40),
            ChatMessage(Role.ASSISTANT, "b" * 10),
            ChatMessage(Role.USER, "c" * 3),
        ),
        system="s" * 8,
        max_tokens=200,
    )

    # ceil(61 / 4) = 16 for the text, 4 for each of the three messages and the system.
    assert estimate_tokens(request) == 16 + 16 + 200


def test_without_max_tokens_the_estimate_reserves_the_default_completion() -> None:
    request = CompletionRequest(messages=(ChatMessage(Role.USER, "hi"),))

    assert estimate_tokens(request) == 1 + 4 + DEFAULT_COMPLETION_TOKENS
    assert estimate_tokens(request, default_completion_tokens=10) == 1 + 4 + 10
