"""Tenant limits and the UTC windows they are counted in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mainmast.llm.v1 import error_reason_pb2
from mainmast_llm._limits import LimitKind, QuotaPolicy, TenantLimits, Window


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def test_minute_limits_count_in_the_utc_minute_that_contains_now() -> None:
    now = _at("2026-03-14T15:09:26") + 0.5

    for kind in (LimitKind.REQUESTS_PER_MINUTE, LimitKind.TOKENS_PER_MINUTE):
        assert kind.window(now) == Window(
            start=int(_at("2026-03-14T15:09:00")), end=int(_at("2026-03-14T15:10:00"))
        )


def test_a_minute_window_starts_exactly_on_the_minute() -> None:
    boundary = _at("2026-03-14T15:10:00")

    assert LimitKind.TOKENS_PER_MINUTE.window(boundary).start == int(boundary)
    assert LimitKind.TOKENS_PER_MINUTE.window(boundary - 0.001).end == int(boundary)


def test_the_daily_budget_counts_in_the_utc_day() -> None:
    window = LimitKind.DAILY_TOKENS.window(_at("2026-03-14T23:59:59"))

    assert window == Window(
        start=int(_at("2026-03-14T00:00:00")), end=int(_at("2026-03-15T00:00:00"))
    )


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        ("2026-03-14T12:00:00", "2026-03-01T00:00:00", "2026-04-01T00:00:00"),
        ("2026-12-31T23:59:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("2028-02-29T08:00:00", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
        ("2026-01-31T00:00:00", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
    ],
)
def test_the_monthly_budget_counts_in_the_utc_calendar_month(
    now: str, start: str, end: str
) -> None:
    assert LimitKind.MONTHLY_TOKENS.window(_at(now)) == Window(
        start=int(_at(start)), end=int(_at(end))
    )


def test_seconds_left_counts_down_to_the_end_and_never_below_zero() -> None:
    window = Window(start=60, end=120)

    assert window.seconds_left(90.5) == 29.5
    assert window.seconds_left(120) == 0.0
    assert window.seconds_left(500) == 0.0


def test_every_limit_names_an_error_reason_of_the_llm_contract() -> None:
    for kind in LimitKind:
        assert error_reason_pb2.ErrorReason.Value(kind.reason) > 0


def test_limits_describe_themselves_with_their_unit() -> None:
    assert LimitKind.REQUESTS_PER_MINUTE.describe(60) == "60 requests per minute"
    assert LimitKind.TOKENS_PER_MINUTE.describe(9000) == "9000 tokens per minute"
    assert LimitKind.DAILY_TOKENS.describe(100) == "100 tokens per UTC day"
    assert LimitKind.MONTHLY_TOKENS.describe(5) == "5 tokens per UTC month"


def test_only_requests_per_minute_counts_requests_instead_of_tokens() -> None:
    assert [kind for kind in LimitKind if not kind.counts_tokens] == [LimitKind.REQUESTS_PER_MINUTE]


def test_tenant_limits_list_only_the_limits_that_are_set() -> None:
    limits = TenantLimits(requests_per_minute=10, monthly_tokens=0)

    assert limits.items() == [
        (LimitKind.REQUESTS_PER_MINUTE, 10),
        (LimitKind.MONTHLY_TOKENS, 0),
    ]
    assert TenantLimits().items() == []


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_limit_that_is_not_a_whole_number_of_zero_or_more_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="tokens_per_minute must be a whole number"):
        TenantLimits(tokens_per_minute=bad)  # type: ignore[arg-type]


def test_a_tenant_override_replaces_the_default_limits() -> None:
    policy = QuotaPolicy(
        default=TenantLimits(requests_per_minute=10),
        tenants={"acme": TenantLimits(daily_tokens=1000)},
    )

    assert policy.limits_for("acme") == TenantLimits(daily_tokens=1000)
    assert policy.limits_for("globex") == TenantLimits(requests_per_minute=10)
    assert QuotaPolicy().limits_for("anyone") == TenantLimits()
