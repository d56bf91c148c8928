"""The retry policy: exponential backoff with full jitter, Retry-After, the deadline."""

from __future__ import annotations

import pytest

from mainmast.errors import UnavailableError
from mainmast_llm._completion import ProviderKind
from mainmast_llm._provider_errors import connection_error, error_for_http_status
from mainmast_llm._retry import RetryPolicy

POLICY = RetryPolicy(base_delay=0.5, max_delay=4.0, max_retry_after=10.0)


def throttled(retry_after: str | None = None):
    headers = {} if retry_after is None else {"retry-after": retry_after}
    return error_for_http_status(ProviderKind.OPENAI, 429, headers, b"{}")


def test_the_cap_doubles_per_retry_up_to_max_delay():
    assert [POLICY.backoff_cap(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert POLICY.backoff_cap(10_000) == 4.0


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.999])
def test_the_wait_is_a_full_jitter_draw_below_the_cap(draw):
    delay = POLICY.delay_before_retry(
        connection_error(ProviderKind.OPENAI), 3, random=draw, remaining=None
    )

    assert delay == pytest.approx(draw * 2.0)


def test_retry_after_is_a_floor_never_waited_less():
    assert POLICY.delay_before_retry(throttled("3"), 1, random=0.0, remaining=None) == 3.0
    # A longer jittered wait is kept.
    assert POLICY.delay_before_retry(throttled("0.1"), 4, random=0.5, remaining=None) == 2.0


def test_a_retry_after_beyond_the_limit_means_no_retry_here():
    assert POLICY.delay_before_retry(throttled("11"), 1, random=0.0, remaining=None) is None


def test_no_wait_reaches_the_deadline():
    assert POLICY.delay_before_retry(throttled("3"), 1, random=0.0, remaining=3.0) is None
    assert POLICY.delay_before_retry(throttled("3"), 1, random=0.0, remaining=3.5) == 3.0
    error = connection_error(ProviderKind.OPENAI)
    assert POLICY.delay_before_retry(error, 4, random=0.9, remaining=3.0) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_failure_no_retry_can_cure_is_not_retried(status):
    error = error_for_http_status(ProviderKind.OPENAI, status, {}, b"{}")

    assert POLICY.delay_before_retry(error, 1, random=0.0, remaining=None) is None


def test_errors_that_are_not_provider_failures_are_not_retried():
    assert POLICY.delay_before_retry(UnavailableError("x"), 1, random=0, remaining=None) is None


def test_retry_numbers_start_at_one():
    with pytest.raises(ValueError, match="starts at 1"):
        POLICY.backoff_cap(0)


@pytest.mark.parametrize(
    "options",
    [
        {"base_delay": -1.0},
        {"max_delay": float("inf")},
        {"max_retry_after": float("nan")},
        {"base_delay": 5.0, "max_delay": 1.0},
    ],
)
def test_nonsense_policies_are_refused(options):
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**options)
