"""GetUsage's aggregation: usage totals by tenant, model alias and UTC day over a range.

The range is widened to whole UTC days (start rounded down, end rounded up) and spans at
most `MAX_RANGE_DAYS`. One GROUP BY over the stored day column gives the totals on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from sqlalchemy import case, func, select

from mainmast.db import DatabasePool
from mainmast.errors import FieldViolation, ValidationError
from mainmast.llm import LLM_ERROR_DOMAIN

from ._ledger_schema import usage_records
from ._usage import CallOutcome

MAX_RANGE_DAYS: Final = 366
"""The longest range GetUsage answers, in days."""


@dataclass(frozen=True, slots=True)
class DailyUsageTotal:
    """The usage of one model alias by one tenant on one UTC day."""

    tenant: str
    model_alias: str
    date: date
    request_count: int
    """Calls made, failed ones included."""
    failed_request_count: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    """Cost in millionths of `currency_code`."""
    currency_code: str


def usage_days(start: datetime, end: datetime) -> tuple[date, date]:
    """The UTC days [first, past_last) that cover [start, end); ValidationError when invalid.

    Both times must be time-zone aware; end must come after start, at most
    `MAX_RANGE_DAYS` days of range once rounded.
    """
    violations = [
        FieldViolation(name, "must be a time-zone aware time")
        for name, value in (("start_time", start), ("end_time", end))
        if value.tzinfo is None
    ]
    if not violations and end <= start:
        violations.append(FieldViolation("end_time", "must be after start_time"))
    if violations:
        raise invalid_usage_range(violations)
    first = start.astimezone(UTC).date()
    end_utc = end.astimezone(UTC)
    past_last = end_utc.date()
    if datetime.combine(past_last, time(), UTC) < end_utc:
        past_last += timedelta(days=1)
    if (past_last - first).days > MAX_RANGE_DAYS:
        raise invalid_usage_range(
            [FieldViolation("end_time", f"must be at most {MAX_RANGE_DAYS} days after start_time")]
        )
    return first, past_last


async def daily_usage(
    pool: DatabasePool,
    *,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    model_alias: str | None = None,
) -> list[DailyUsageTotal]:
    """Usage totals per tenant, UTC day and model alias with any call in [start, end).

    `tenant` None means every tenant; `model_alias` None means every alias. The range is
    widened to whole UTC days (see `usage_days`). Ordered by tenant, day, then alias. A
    day whose calls were priced in two currencies gives one total per currency.
    """
    first, past_last = usage_days(start, end)
    table = usage_records.c
    failed = case((table.outcome != CallOutcome.SUCCEEDED.value, 1), else_=0)
    query = (
        select(
            table.tenant,
            table.usage_date,
            table.model_alias,
            table.currency_code,
            func.count().label("request_count"),
            func.sum(failed).label("failed_request_count"),
            func.sum(table.prompt_tokens).label("prompt_tokens"),
            func.sum(table.completion_tokens).label("completion_tokens"),
            func.sum(table.cost_micros).label("cost_micros"),
        )
        .where(table.usage_date >= first, table.usage_date < past_last)
        .group_by(table.tenant, table.usage_date, table.model_alias, table.currency_code)
        .order_by(table.tenant, table.usage_date, table.model_alias, table.currency_code)
    )
    if tenant is not None:
        query = query.where(table.tenant == tenant)
    if model_alias is not None:
        query = query.where(table.model_alias == model_alias)
    async with pool.connection() as connection:
        rows = (await connection.execute(query)).all()
    # PostgreSQL sums bigints as numeric (Decimal): int() makes every backend alike.
    return [
        DailyUsageTotal(
            tenant=row.tenant,
            model_alias=row.model_alias,
            date=row.usage_date,
            request_count=int(row.request_count),
            failed_request_count=int(row.failed_request_count),
            prompt_tokens=int(row.prompt_tokens),
            completion_tokens=int(row.completion_tokens),
            cost_micros=int(row.cost_micros),
            currency_code=row.currency_code,
        )
        for row in rows
    ]


def invalid_usage_range(violations: list[FieldViolation]) -> ValidationError:
    """The contract's INVALID_TIME_RANGE error, one field violation per problem."""
    return ValidationError(
        "The usage range is invalid: "
        + "; ".join(f"{v.field}: {v.description}" for v in violations),
        field_violations=violations,
        reason="INVALID_TIME_RANGE",
        domain=LLM_ERROR_DOMAIN,
    )
