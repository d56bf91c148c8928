"""A circuit breaker per deployment: stop calling a deployment that keeps failing.

CLOSED lets every call through and counts consecutive failures; `failure_threshold` of
them open it. OPEN lets nothing through until `cool_down` has passed; then the first caller
to ask gets the one half-open probe, and every other caller is refused until the probe
ends: its success closes the breaker, its failure opens it for another cool-down, and a
probe that ends neither way (the caller was cancelled) frees the slot for the next caller.

It works for an alias with a single deployment too: when that deployment is open the call
fails fast instead of sending every request to a provider known to be down.

The breaker is used from one event loop and never awaits, so it needs no lock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.StrEnum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """One deployment's breaker; `clock` (seconds, monotonic) is injectable for tests."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cool_down: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down <= 0:
            raise ValueError("cool_down must be positive")
        self._failure_threshold = failure_threshold
        self._cool_down = cool_down
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        """CLOSED, OPEN, or HALF_OPEN while a probe is in flight."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._consecutive_failures

    def try_acquire(self) -> BreakerPermit | None:
        """A permit for one call now, or None; from OPEN, the permit is the half-open probe.

        The caller ends its call with exactly one of the permit's `succeeded`, `failed` or
        `released`.
        """
        if self._state is BreakerState.CLOSED:
            return BreakerPermit(self, probe=False)
        if self._state is BreakerState.HALF_OPEN or self.retry_after() > 0:
            return None
        self._state = BreakerState.HALF_OPEN
        return BreakerPermit(self, probe=True)

    def retry_after(self) -> float:
        """Seconds until a probe may go through; 0 when a call may go through now.

        While a probe is in flight, the time one cool-down would take, as a best guess.
        """
        if self._state is BreakerState.CLOSED:
            return 0.0
        if self._state is BreakerState.HALF_OPEN:
            return self._cool_down
        return max(0.0, self._opened_at + self._cool_down - self._clock())

    def _succeeded(self, *, probe: bool) -> None:
        # A late answer to a call let through before the breaker opened says little about
        # now; only the probe's answer closes an open breaker.
        if probe or self._state is BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._consecutive_failures = 0

    def _failed(self, *, probe: bool) -> None:
        if probe:
            self._open()
        elif self._state is BreakerState.CLOSED:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self._failure_threshold:
                self._open()

    def _released(self, *, probe: bool) -> None:
        if probe:
            # OPEN with the cool-down already over: the next caller probes.
            self._state = BreakerState.OPEN

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()


class BreakerPermit:
    """Leave to make one call through a breaker; say how the call ended, once."""

    __slots__ = ("_breaker", "_ended", "probe")

    def __init__(self, breaker: CircuitBreaker, *, probe: bool) -> None:
        self._breaker = breaker
        self._ended = False
        self.probe = probe
        """Whether this call is the half-open probe."""

    def succeeded(self) -> None:
        """The deployment answered (even to refuse a bad request): it works."""
        if self._end():
            self._breaker._succeeded(probe=self.probe)

    def failed(self) -> None:
        """The call failed in a way that counts against the deployment."""
        if self._end():
            self._breaker._failed(probe=self.probe)

    def released(self) -> None:
        """The call ended with no verdict on the deployment (cancelled)."""
        if self._end():
            self._breaker._released(probe=self.probe)

    # The permit is the breaker's other half, so it calls the breaker's private methods.
    def _end(self) -> bool:
        ended, self._ended = self._ended, True
        return not ended
