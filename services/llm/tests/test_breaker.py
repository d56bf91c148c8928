"""The circuit breaker's states, with a fake clock."""

from __future__ import annotations

import pytest

from mainmast_llm._breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.try_acquire()
        assert permit is not None
        permit.failed()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cool_down=30.0, clock=clock)


def test_a_closed_breaker_lets_every_call_through_and_counts_consecutive_failures(breaker):
    fail(breaker, 2)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2
    assert breaker.retry_after() == 0


def test_a_success_resets_the_count(breaker):
    fail(breaker, 2)
    permit = breaker.try_acquire()
    assert permit is not None
    permit.succeeded()
    fail(breaker, 2)

    assert breaker.state is BreakerState.CLOSED


def test_n_consecutive_failures_open_it_and_it_refuses_calls_until_the_cool_down(breaker, clock):
    fail(breaker, 3)

    assert breaker.state is BreakerState.OPEN
    assert breaker.try_acquire() is None
    clock.now += 29.5
    assert breaker.try_acquire() is None
    assert breaker.retry_after() == pytest.approx(0.5)


def test_after_the_cool_down_exactly_one_probe_goes_through(breaker, clock):
    fail(breaker, 3)
    clock.now += 30

    probe = breaker.try_acquire()
    others = [breaker.try_acquire() for _ in range(10)]

    assert probe is not None
    assert probe.probe
    assert others == [None] * 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_after() == 30


def test_the_probes_success_closes_it(breaker, clock):
    fail(breaker, 3)
    clock.now += 30
    probe = breaker.try_acquire()
    assert probe is not None

    probe.succeeded()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    permit = breaker.try_acquire()
    assert permit is not None
    assert not permit.probe


def test_the_probes_failure_reopens_it_for_a_whole_cool_down(breaker, clock):
    fail(breaker, 3)
    clock.now += 40
    probe = breaker.try_acquire()
    assert probe is not None

    probe.failed()

    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 30
    assert breaker.try_acquire() is None


def test_a_released_probe_lets_the_next_caller_probe(breaker, clock):
    fail(breaker, 3)
    clock.now += 30
    probe = breaker.try_acquire()
    assert probe is not None

    probe.released()
    second = breaker.try_acquire()

    assert second is not None
    assert second.probe
    assert breaker.try_acquire() is None


def test_late_results_of_calls_let_through_before_it_opened_do_not_decide(breaker, clock):
    early = [breaker.try_acquire() for _ in range(2)]
    fail(breaker, 3)
    clock.now += 30
    probe = breaker.try_acquire()
    assert probe is not None

    early[0].succeeded()  # type: ignore[union-attr]
    assert breaker.state is BreakerState.HALF_OPEN
    early[1].failed()  # type: ignore[union-attr]
    assert breaker.state is BreakerState.HALF_OPEN
    probe.succeeded()
    assert breaker.state is BreakerState.CLOSED


def test_a_permit_counts_once(breaker):
    permit = breaker.try_acquire()
    assert permit is not None
    for _ in range(5):
        permit.failed()

    assert breaker.consecutive_failures == 1


def test_a_breaker_for_a_single_failure_opens_on_it(clock):
    breaker = CircuitBreaker(failure_threshold=1, cool_down=5.0, clock=clock)
    fail(breaker, 1)

    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(("threshold", "cool_down"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_nonsense_settings_are_refused(threshold, cool_down):
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failure_threshold=threshold, cool_down=cool_down)
