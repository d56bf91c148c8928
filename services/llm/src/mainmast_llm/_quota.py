"""Per-tenant rate limits and token budgets, reserved before a call and settled after it.

    quotas = TenantQuotas(store, policy)
    reservation = await quotas.reserve(tenant, estimated_tokens=estimate_tokens(request))
    try:
        response = await adapter.complete(request)
    except BaseException:
        await quotas.settle(reservation, actual_tokens=0)     # the call used nothing
        raise
    await quotas.settle(reservation, actual_tokens=response.total_tokens)

`reserve` counts one request and the estimate (prompt estimate plus max_tokens) against
every limit of the tenant in one atomic step of the store, so 64 calls racing for a
budget's last tokens cannot together overrun it; when any limit would be passed it raises
RateLimitedError with a QuotaViolation per limit and the time until they all free up.
`settle` then puts the estimate right: it releases what was not used, or charges the
overrun (a provider may answer longer than estimated; what was used is counted, even past
the limit, and later calls wait for the next window).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mainmast.errors import QuotaViolation, RateLimitedError
from mainmast.llm import LLM_ERROR_DOMAIN

from ._completion import CompletionRequest
from ._limits import LimitKind, QuotaPolicy, Window
from ._quota_store import Counter, CounterAdjustment, CounterCharge, QuotaStore

DEFAULT_COMPLETION_TOKENS: Final = 1024
"""The completion tokens reserved for a request that sets no max_tokens."""

_CHARS_PER_TOKEN: Final = 4
_TOKENS_PER_MESSAGE: Final = 4
"""Role markers and separators that chat formats add around each message."""


def estimate_tokens(
    request: CompletionRequest, *, default_completion_tokens: int = DEFAULT_COMPLETION_TOKENS
) -> int:
    """An upper-leaning estimate of the tokens a request uses: prompt plus completion.

    The prompt is estimated at four characters a token (English text with the tokenizers
    of the large providers) plus a few tokens of framing per message; the completion is
    max_tokens, or `default_completion_tokens` when the request sets none. Settling with
    the provider's count corrects the estimate either way.
    """
    texts = [request.system, *request.stop, *(message.content for message in request.messages)]
    characters = sum(len(text) for text in texts)
    prompt = math.ceil(characters / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * (
        len(request.messages) + (1 if request.system else 0)
    )
    completion = request.max_tokens if request.max_tokens is not None else default_completion_tokens
    return prompt + completion


@dataclass(slots=True)
class Reservation:
    """What `TenantQuotas.reserve` counted for one call, to be settled once afterwards."""

    tenant: str
    estimated_tokens: int
    token_counters: tuple[Counter, ...]
    """The token counters the estimate was added to (the request counter needs no settling)."""
    settled: bool = field(default=False)
    """Whether `settle` has run for it."""


class TenantQuotas:
    """Rate limits and token budgets of every tenant, counted in one QuotaStore."""

    def __init__(
        self,
        store: QuotaStore,
        policy: QuotaPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Count in `store` the limits `policy` sets; `clock` is wall time in epoch seconds."""
        self._store = store
        self._policy = policy
        self._clock = clock

    def __repr__(self) -> str:
        return f"TenantQuotas(store={self._store!r})"

    @property
    def store(self) -> QuotaStore:
        """The store the counters live in."""
        return self._store

    async def reserve(self, tenant: str, *, estimated_tokens: int) -> Reservation:
        """Count one request and `estimated_tokens` for `tenant`, or raise RateLimitedError.

        Nothing is counted when any limit would be passed. Raises ValueError for an empty
        tenant or a negative estimate, and UnavailableError when the store is unreachable.
        """
        if not tenant:
            msg = "a quota needs a tenant"
            raise ValueError(msg)
        if estimated_tokens < 0:
            msg = f"estimated_tokens must be >= 0, not {estimated_tokens}"
            raise ValueError(msg)
        now = self._clock()
        charges = [
            CounterCharge(
                counter=Counter.of(tenant, kind, kind.window(now)),
                amount=estimated_tokens if kind.counts_tokens else 1,
                limit=limit,
            )
            for kind, limit in self._policy.limits_for(tenant).items()
        ]
        failed = await self._store.reserve(charges, now=now) if charges else ()
        if failed:
            raise quota_exceeded(tenant, [charges[index] for index in failed], now=now)
        return Reservation(
            tenant=tenant,
            estimated_tokens=estimated_tokens,
            token_counters=tuple(c.counter for c in charges if c.counter.kind.counts_tokens),
        )

    async def settle(self, reservation: Reservation, *, actual_tokens: int) -> None:
        """Replace the reservation's estimate with the tokens the call really used.

        Less than estimated gives the difference back; more charges the overrun. Settling
        twice raises RuntimeError (it would count the difference twice).
        """
        if actual_tokens < 0:
            msg = f"actual_tokens must be >= 0, not {actual_tokens}"
            raise ValueError(msg)
        if reservation.settled:
            msg = "this reservation is already settled"
            raise RuntimeError(msg)
        reservation.settled = True
        delta = actual_tokens - reservation.estimated_tokens
        if delta and reservation.token_counters:
            await self._store.adjust(
                [CounterAdjustment(counter, delta) for counter in reservation.token_counters],
                now=self._clock(),
            )


def quota_exceeded(tenant: str, charges: list[CounterCharge], *, now: float) -> RateLimitedError:
    """The error for `charges` that did not fit: one violation each, retry when all free up.

    A charge larger than its limit can never fit, so no retry_after is given then.
    """
    violations = [
        QuotaViolation(f"tenant:{tenant}", charge.counter.kind.describe(charge.limit))
        for charge in charges
    ]
    never_fits = any(charge.amount > charge.limit for charge in charges)
    # Every violated window must end before a retry can pass; the latest one decides.
    governing = max(charges, key=lambda charge: charge.counter.window.end)
    kind = governing.counter.kind
    retry_after = None if never_fits else _retry_after(governing.counter.window, now)
    metadata = {"tenant": tenant, "limit": str(governing.limit)}
    if kind is LimitKind.DAILY_TOKENS:
        metadata["period"] = "daily"
    elif kind is LimitKind.MONTHLY_TOKENS:
        metadata["period"] = "monthly"
    descriptions = ", ".join(violation.description for violation in violations)
    return RateLimitedError(
        f"Tenant '{tenant}' reached its limit: {descriptions}.",
        retry_after=retry_after,
        quota_violations=violations,
        reason=kind.reason,
        domain=LLM_ERROR_DOMAIN,
        metadata=metadata,
    )


def _retry_after(window: Window, now: float) -> float:
    # Whole seconds, rounded up: RetryInfo readers round down, and a retry a moment before
    # the window ends would be refused again.
    return float(max(math.ceil(window.seconds_left(now)), 1))
