"""Usage records and prices: exact costs per 1k tokens, frozen tables, validated records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mainmast_llm._completion import ProviderKind
from mainmast_llm._usage import CallOutcome, ModelPrice, PriceTable, UsageRecord

PRICES = PriceTable(
    {
        "gpt-4o": ModelPrice(Decimal("0.0025"), Decimal("0.01")),
        "azure-east": ModelPrice(Decimal("0.002"), Decimal("0.008")),
    },
    currency_code="EUR",
)


def _record(**overrides: object) -> UsageRecord:
    values: dict[str, object] = {
        "tenant": "tenants/acme",
        "subject": "users/ada",
        "model_alias": "gpt-4",
        "deployment": "openai-main",
        "provider": ProviderKind.OPENAI,
        "model": "gpt-4o",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_micros": 0,
        "currency_code": "USD",
        "latency": timedelta(milliseconds=120),
        "outcome": CallOutcome.SUCCEEDED,
        "occurred_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
    }
    values.update(overrides)
    return UsageRecord(**values)  # type: ignore[arg-type]


def test_cost_is_per_thousand_tokens_in_micros() -> None:
    # 1200 * 0.0025 + 300 * 0.01 = 3 + 3 = 6 units per 1k -> 0.006 EUR = 6000 micros.
    assert PRICES.cost_micros("openai-main", "gpt-4o", 1200, 300) == 6000


def test_a_deployment_price_wins_over_its_model_price() -> None:
    assert PRICES.cost_micros("azure-east", "gpt-4o", 1000, 1000) == 10_000


def test_an_unpriced_call_costs_nothing() -> None:
    assert PRICES.cost_micros("ollama-local", "llama3.2", 5000, 5000) == 0


def test_fractional_micros_round_half_up() -> None:
    price = ModelPrice(Decimal("0.0015"), Decimal(0))
    assert price.cost_micros(1, 0) == 2  # 1.5 micros
    assert price.cost_micros(3, 0) == 5  # 4.5 micros


def test_prices_from_floats_and_strings_keep_their_decimal_value() -> None:
    price = ModelPrice(0.1, "0.2")  # type: ignore[arg-type]
    assert price.prompt_per_1k == Decimal("0.1")
    assert price.cost_micros(1000, 1000) == 300_000


@pytest.mark.parametrize("bad", [Decimal(-1), Decimal("NaN"), "cheap"])
def test_a_bad_price_is_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        ModelPrice(bad, Decimal(0))  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["usd", "US", "EURO", "€UR"])
def test_a_bad_currency_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        PriceTable({}, currency_code=code)


def test_the_price_table_is_a_frozen_copy() -> None:
    source = {"m": ModelPrice(Decimal(1), Decimal(1))}
    table = PriceTable(source)
    source["m"] = ModelPrice(Decimal(100), Decimal(100))
    assert table.cost_micros("d", "m", 1000, 0) == 1_000_000
    with pytest.raises(TypeError):
        table.prices["m"] = ModelPrice(Decimal(0), Decimal(0))  # type: ignore[index]


def test_a_priced_record_carries_cost_currency_and_a_fresh_id() -> None:
    first = UsageRecord.priced(
        PRICES,
        tenant="tenants/acme",
        subject="users/ada",
        model_alias="gpt-4",
        deployment="openai-main",
        provider=ProviderKind.OPENAI,
        model="gpt-4o",
        prompt_tokens=1200,
        completion_tokens=300,
        latency=timedelta(seconds=1),
        outcome=CallOutcome.SUCCEEDED,
        request_id="r-1",
    )
    second = UsageRecord.priced(
        PRICES,
        tenant="tenants/acme",
        subject="users/ada",
        model_alias="gpt-4",
        deployment="openai-main",
        provider=ProviderKind.OPENAI,
        model="gpt-4o",
        prompt_tokens=0,
        completion_tokens=0,
        latency=timedelta(seconds=1),
        outcome=CallOutcome.TIMED_OUT,
    )
    assert (first.cost_micros, first.currency_code) == (6000, "EUR")
    assert first.occurred_at.tzinfo is UTC
    assert not first.failed
    assert second.failed
    assert first.record_id != second.record_id


def test_times_are_kept_in_utc() -> None:
    record = _record(occurred_at=datetime(2026, 3, 2, 1, tzinfo=timezone(timedelta(hours=3))))
    assert record.occurred_at == datetime(2026, 3, 1, 22, tzinfo=UTC)
    assert record.occurred_at.tzinfo is UTC


def test_strings_become_their_enums() -> None:
    record = _record(provider="anthropic", outcome="rate_limited")
    assert record.provider is ProviderKind.ANTHROPIC
    assert record.outcome is CallOutcome.RATE_LIMITED


def test_a_call_refused_before_routing_is_recorded_without_a_deployment() -> None:
    record = UsageRecord.priced(
        PRICES,
        tenant="acme",
        subject="tenants/acme/users/olga",
        model_alias="gpt-4",
        deployment="",
        provider=None,
        model="",
        prompt_tokens=0,
        completion_tokens=0,
        latency=timedelta(0),
        outcome="quota_exceeded",
    )
    assert (record.provider, record.outcome) == (None, CallOutcome.QUOTA_EXCEEDED)
    assert (record.cost_micros, record.failed) == (0, True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tenant": ""}, "tenant"),
        ({"model_alias": "x" * 256}, "model_alias"),
        ({"request_id": "r" * 65}, "request_id"),
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"completion_tokens": True}, "completion_tokens"),
        ({"cost_micros": 1.5}, "cost_micros"),
        ({"latency": timedelta(seconds=-1)}, "latency"),
        ({"occurred_at": datetime(2026, 3, 1)}, "occurred_at"),  # naive on purpose
        ({"outcome": "exploded"}, "exploded"),
    ],
)
def test_an_invalid_record_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _record(**overrides)
