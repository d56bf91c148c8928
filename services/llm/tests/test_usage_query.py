"""GetUsage's aggregation on SQLite and PostgreSQL: totals by tenant, UTC day and alias, the
range widened to whole days, the alias and tenant filters, and the range checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mainmast.db import DatabasePool
from mainmast.errors import ValidationError
from mainmast_llm._completion import ProviderKind
from mainmast_llm._ledger import UsageLedger
from mainmast_llm._ledger_migrations import migrate_database
from mainmast_llm._usage import CallOutcome, ModelPrice, PriceTable, UsageRecord
from mainmast_llm._usage_query import MAX_RANGE_DAYS, DailyUsageTotal, daily_usage, usage_days

PRICES = PriceTable(
    {
        "gpt-4o": ModelPrice(prompt_per_1k=Decimal(1), completion_per_1k=Decimal(2)),
        "llama3.2": ModelPrice(prompt_per_1k=Decimal(0), completion_per_1k=Decimal(0)),
    }
)
DAY_1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY_2 = DAY_1 + timedelta(days=1)
DAY_3 = DAY_1 + timedelta(days=2)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[DatabasePool]:
    """A migrated database on each backend."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    database = DatabasePool(url, pool_size=2, max_overflow=0)
    try:
        await migrate_database(database)
        yield database
    finally:
        await database.close()


def _call(
    tenant: str,
    alias: str,
    at: datetime,
    *,
    prompt: int = 1000,
    completion: int = 500,
    outcome: CallOutcome = CallOutcome.SUCCEEDED,
) -> UsageRecord:
    model = "gpt-4o" if alias == "gpt-4" else "llama3.2"
    return UsageRecord.priced(
        PRICES,
        tenant=tenant,
        subject="users/ada",
        model_alias=alias,
        deployment=f"{alias}-main",
        provider=ProviderKind.OPENAI if alias == "gpt-4" else ProviderKind.OLLAMA,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency=timedelta(milliseconds=30),
        outcome=outcome,
        occurred_at=at,
    )


async def _store(pool: DatabasePool, records: list[UsageRecord]) -> None:
    ledger = UsageLedger(pool)
    for record in records:
        ledger.record(record)
    counts = await ledger.close()
    assert counts.written == len(records)


def _tenants() -> tuple[str, str]:
    prefix = uuid.uuid4().hex[:10]
    # Sorted names: the expected order of the answer is tenant first.
    return f"tenants/{prefix}-a", f"tenants/{prefix}-b"


def _mine(totals: list[DailyUsageTotal], *tenants: str) -> list[DailyUsageTotal]:
    # The PostgreSQL database is shared by the test run: other tests' tenants are not ours.
    return [total for total in totals if total.tenant in tenants]


async def test_totals_by_tenant_day_and_alias(pool: DatabasePool) -> None:
    acme, globex = _tenants()
    late = DAY_1 + timedelta(hours=23, minutes=59, seconds=59)
    # 01:30 at UTC+3 is 22:30 UTC the day before: the UTC day counts.
    early_east = datetime(2026, 3, 2, 1, 30, tzinfo=timezone(timedelta(hours=3)))
    await _store(
        pool,
        [
            _call(acme, "gpt-4", DAY_1 + timedelta(hours=9)),
            _call(acme, "gpt-4", late, prompt=2000, completion=0),
            _call(acme, "gpt-4", early_east, outcome=CallOutcome.TIMED_OUT, prompt=0, completion=0),
            _call(acme, "gpt-4", DAY_2),
            _call(acme, "llama2", DAY_1 + timedelta(hours=1), prompt=7, completion=3),
            _call(globex, "gpt-4", DAY_2 + timedelta(hours=5), outcome=CallOutcome.RATE_LIMITED),
            _call(globex, "gpt-4", DAY_3),  # outside the range below
        ],
    )
    totals = _mine(await daily_usage(pool, start=DAY_1, end=DAY_3), acme, globex)
    # gpt-4o costs 1 per 1k prompt and 2 per 1k completion tokens.
    assert totals == [
        DailyUsageTotal(acme, "gpt-4", date(2026, 3, 1), 3, 1, 3000, 500, 4_000_000, "USD"),
        DailyUsageTotal(acme, "llama2", date(2026, 3, 1), 1, 0, 7, 3, 0, "USD"),
        DailyUsageTotal(acme, "gpt-4", date(2026, 3, 2), 1, 0, 1000, 500, 2_000_000, "USD"),
        DailyUsageTotal(globex, "gpt-4", date(2026, 3, 2), 1, 1, 1000, 500, 2_000_000, "USD"),
    ]


async def test_filters_by_tenant_and_alias(pool: DatabasePool) -> None:
    acme, globex = _tenants()
    await _store(
        pool,
        [
            _call(acme, "gpt-4", DAY_1),
            _call(acme, "llama2", DAY_1),
            _call(globex, "gpt-4", DAY_1),
        ],
    )
    only_acme = await daily_usage(pool, start=DAY_1, end=DAY_2, tenant=acme)
    assert [(t.tenant, t.model_alias) for t in only_acme] == [(acme, "gpt-4"), (acme, "llama2")]
    gpt4 = _mine(await daily_usage(pool, start=DAY_1, end=DAY_2, model_alias="gpt-4"), acme, globex)
    assert [(t.tenant, t.model_alias) for t in gpt4] == [(acme, "gpt-4"), (globex, "gpt-4")]
    assert await daily_usage(pool, start=DAY_1, end=DAY_2, tenant=acme, model_alias="none") == []


async def test_the_range_is_widened_to_whole_utc_days(pool: DatabasePool) -> None:
    acme, _ = _tenants()
    await _store(
        pool,
        [
            _call(acme, "gpt-4", DAY_1 + timedelta(hours=1)),
            _call(acme, "gpt-4", DAY_2 + timedelta(hours=20)),
            _call(acme, "gpt-4", DAY_3 + timedelta(hours=1)),
        ],
    )
    # From noon on day 1 to 00:00:01 on day 2: days 1 and 2, not day 3.
    totals = await daily_usage(
        pool, start=DAY_1 + timedelta(hours=12), end=DAY_2 + timedelta(seconds=1), tenant=acme
    )
    assert [t.date for t in totals] == [date(2026, 3, 1), date(2026, 3, 2)]


def test_usage_days_round_down_and_up() -> None:
    assert usage_days(DAY_1, DAY_2) == (date(2026, 3, 1), date(2026, 3, 2))
    assert usage_days(DAY_1 + timedelta(hours=5), DAY_2 + timedelta(microseconds=1)) == (
        date(2026, 3, 1),
        date(2026, 3, 3),
    )
    end = DAY_1 + timedelta(days=MAX_RANGE_DAYS)
    assert usage_days(DAY_1, end) == (DAY_1.date(), end.date())


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (DAY_2, DAY_1, "end_time"),
        (DAY_1, DAY_1, "end_time"),
        (DAY_1, DAY_1 + timedelta(days=MAX_RANGE_DAYS, seconds=1), "end_time"),
        (datetime(2026, 3, 1), DAY_2, "start_time"),  # naive on purpose
    ],
)
def test_a_bad_range_is_a_validation_error(start: datetime, end: datetime, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        usage_days(start, end)
    assert caught.value.reason == "INVALID_TIME_RANGE"
    assert [violation.field for violation in caught.value.field_violations] == [field]
