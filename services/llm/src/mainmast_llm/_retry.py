"""When to try the same deployment again: exponential backoff, full jitter, Retry-After.

The n-th retry waits a random time between 0 and `min(max_delay, base_delay * 2**(n-1))`
("full jitter", which spreads the retries of many callers best), but never less than the
provider's Retry-After. A retry that could not start before the call's deadline is not
made, and neither is one the provider asks to delay beyond `max_retry_after`: the router
moves on to the next deployment instead of sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from ._provider_errors import is_retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait before retrying a deployment after a retryable failure."""

    base_delay: float = 0.25
    """The cap of the first retry's random wait, in seconds."""
    max_delay: float = 8.0
    """The largest cap of a random wait, in seconds."""
    max_retry_after: float = 30.0
    """The longest Retry-After worth waiting for on one deployment, in seconds."""

    def __post_init__(self) -> None:
        for name in ("base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds, at least 0")
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")

    def backoff_cap(self, retry_number: int) -> float:
        """The cap of the random wait before retry `retry_number` (1 for the first retry)."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        # min() first on the exponent keeps 2**n from overflowing for absurd retry numbers.
        exponent = min(retry_number - 1, 64)
        return min(self.max_delay, self.base_delay * 2.0**exponent)

    def delay_before_retry(
        self,
        error: BaseException,
        retry_number: int,
        *,
        random: float,
        remaining: float | None,
    ) -> float | None:
        """Seconds to wait before retry `retry_number` after `error`, or None: do not retry.

        `random` is a draw from [0, 1); `remaining` is the time left before the call's
        deadline (None: no deadline). None comes back for an error no retry can cure, a
        Retry-After above `max_retry_after`, and a wait that would reach the deadline.
        """
        if not is_retryable(error):
            return None
        delay = random * self.backoff_cap(retry_number)
        retry_after = _retry_after_seconds(error)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            delay = max(delay, retry_after)
        if remaining is not None and delay >= remaining:
            return None
        return delay


def _retry_after_seconds(error: BaseException) -> float | None:
    retry_after = getattr(error, "retry_after", None)
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else None
