"""The usage ledger's table, `llm_usage_records`, and how a record becomes a row.

One row per call. The UTC day is stored beside the instant (`usage_date`), so the daily
totals group by a plain column on SQLite and PostgreSQL alike and the range is an index
scan. `record_id` is the primary key and (tenant, request_id) is unique among succeeded
calls, so a batch written twice (its first commit's outcome unknown) or a successful call
retried under the same request id is stored once: the INSERT skips rows that conflict.
Failures are not in that index: a call refused (by a quota, say) and retried under its
request id until it succeeds leaves a row per refusal and still one for its success.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    text,
)

from ._usage import NAME_LENGTH, REQUEST_ID_LENGTH, UsageRecord

# Constraint names spelled out, so migrations and autogenerate agree on both backends.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SUCCEEDED_ONLY: Final = text("outcome = 'succeeded'")
"""The rows the request-id index covers: a request id is counted once among successes."""

ledger_metadata: Final = MetaData(naming_convention=NAMING_CONVENTION)
"""The metadata of the llm service's tables (for migrations and their autogenerate check)."""

usage_records: Final = Table(
    "llm_usage_records",
    ledger_metadata,
    Column("record_id", String(32), nullable=False),
    Column("request_id", String(REQUEST_ID_LENGTH), nullable=True),
    Column("tenant", String(NAME_LENGTH), nullable=False),
    Column("subject", String(NAME_LENGTH), nullable=False),
    Column("model_alias", String(NAME_LENGTH), nullable=False),
    Column("deployment", String(NAME_LENGTH), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("model", String(NAME_LENGTH), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("latency_micros", BigInteger, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("usage_date", Date, nullable=False),
    PrimaryKeyConstraint("record_id"),
    Index(None, "tenant", "usage_date", "model_alias"),
    # NULL request ids (calls without one) are distinct on both backends.
    Index(
        None,
        "tenant",
        "request_id",
        unique=True,
        sqlite_where=SUCCEEDED_ONLY,
        postgresql_where=SUCCEEDED_ONLY,
    ),
)
"""One row per recorded call."""


def record_row(record: UsageRecord) -> dict[str, Any]:
    """The column values of `record`'s row."""
    latency = record.latency
    return {
        "record_id": record.record_id,
        "request_id": record.request_id or None,
        "tenant": record.tenant,
        "subject": record.subject,
        "model_alias": record.model_alias,
        "deployment": record.deployment,
        "provider": "" if record.provider is None else record.provider.value,
        "model": record.model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_micros": record.cost_micros,
        "currency_code": record.currency_code,
        "latency_micros": (latency.days * 86_400 + latency.seconds) * 1_000_000
        + latency.microseconds,
        "outcome": record.outcome.value,
        "occurred_at": record.occurred_at,
        "usage_date": record.occurred_at.date(),
    }
