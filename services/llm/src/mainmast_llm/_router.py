"""The router: a model alias, its fallbacks, their deployments, retries and breakers.

A call walks the deployments of the requested alias in order (see `ordered_deployments`),
then those of each fallback alias. On one deployment it retries a retryable failure
(connection, timeout, 429, 5xx, overloaded, malformed answer) up to the deployment's
`max_attempts`, waiting as `RetryPolicy` says; then it moves on. A failure no retry can
cure (400 and the like, 401/403) is raised at once: another deployment would refuse the
same request, and a bad key is for an operator to fix. A deployment whose breaker is open
is skipped (when every one was, the call fails fast with CircuitOpenError and RetryInfo),
and so is one that has its `max_concurrent_requests` in flight.

One deadline (absolute, on the event loop's clock) bounds the whole walk: no attempt
outlives it, and no wait reaches it. A stream fails over only while nothing has reached
the caller; after its first delta, a failure is raised as StreamInterruptedError.

Whatever ends a call without a completion carries the attempts made so far
(`attempts_of(error)`): a provider failure or routing error, and a cancellation too,
whose last attempt is then the one abandoned (CANCELLED), so the caller's ledger knows
where a cancelled call was.
"""

from __future__ import annotations

import asyncio
import random as random_module
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from mainmast.errors import MainmastError
from mainmast.logging import get_logger

from ._adapter import ProviderAdapter
from ._breaker import BreakerPermit, CircuitBreaker
from ._completion import CompletionRequest, CompletionResponse, StreamEvent, TextDelta
from ._provider_errors import ProviderFailure, malformed_response_error
from ._retry import RetryPolicy
from ._routing import Deployment, RoutingTable, ordered_deployments
from ._routing_results import (
    Attempt,
    AttemptOutcome,
    CircuitOpenError,
    DeploymentAtCapacityError,
    ModelNotFoundError,
    RoutedCompletion,
    RoutingDeadlineError,
    StreamInterruptedError,
    attach_attempts,
    outcome_of_failure,
)

RoutedStreamEvent = TextDelta | RoutedCompletion
"""What a routed stream yields: TextDeltas, then exactly one RoutedCompletion, last."""


@dataclass(slots=True)
class _Slot:
    """Leave to try one deployment once, and what came of it."""

    model_alias: str
    deployment: Deployment
    permit: BreakerPermit
    deadline: float | None
    error: BaseException | None = None


@dataclass(slots=True)
class _Walk:
    """The attempts of one call so far, and what to raise if none succeeds."""

    requested_alias: str
    attempts: list[Attempt] = field(default_factory=list)
    last_error: MainmastError | None = None
    open_retry_after: float | None = None

    def record(
        self,
        slot: _Slot,
        outcome: AttemptOutcome,
        latency: float,
        error: MainmastError | None = None,
    ) -> None:
        failure = error if isinstance(error, ProviderFailure) else None
        self.attempts.append(
            Attempt(
                model_alias=slot.model_alias,
                deployment=slot.deployment.name,
                provider=slot.deployment.provider,
                model=slot.deployment.model,
                outcome=outcome,
                latency=timedelta(seconds=latency),
                upstream_http_status=failure.upstream_http_status if failure else 0,
                error_reason=error.reason if error else "",
            )
        )

    def skip_open(self, model_alias: str, deployment: Deployment, retry_after: float) -> None:
        self.attempts.append(
            Attempt(
                model_alias=model_alias,
                deployment=deployment.name,
                provider=deployment.provider,
                model=deployment.model,
                outcome=AttemptOutcome.CIRCUIT_OPEN,
                latency=timedelta(0),
                error_reason=CircuitOpenError.default_reason,
            )
        )
        if self.open_retry_after is None or retry_after < self.open_retry_after:
            self.open_retry_after = retry_after

    def skip_busy(self, model_alias: str, deployment: Deployment) -> None:
        error = DeploymentAtCapacityError(
            f"The deployment {deployment.name!r} has its limit of "
            f"{deployment.max_concurrent_requests} requests in flight.",
            metadata={"deployment": deployment.name, "provider": deployment.provider.value},
        )
        self.attempts.append(
            Attempt(
                model_alias=model_alias,
                deployment=deployment.name,
                provider=deployment.provider,
                model=deployment.model,
                outcome=AttemptOutcome.RATE_LIMITED,
                latency=timedelta(0),
                error_reason=error.reason,
            )
        )
        # A provider's own failure says more than our limit, so it is kept if there is one.
        if self.last_error is None:
            self.last_error = error

    def final_error(self) -> MainmastError:
        """The error that ends a call no deployment answered, its attempts attached."""
        error: MainmastError
        if self.last_error is not None:
            error = self.last_error
        elif self.open_retry_after is not None:
            error = CircuitOpenError(
                f"Every deployment of the model {self.requested_alias!r} and its fallbacks "
                "is failing; no call was made.",
                retry_after=self.open_retry_after,
                metadata={"model": self.requested_alias},
            )
        else:
            error = RoutingDeadlineError(
                f"The deadline passed before the model {self.requested_alias!r} could be tried.",
                metadata={"model": self.requested_alias},
            )
        return self.decorated(error)

    def decorated(self, error: MainmastError) -> MainmastError:
        error.metadata.setdefault("model", self.requested_alias)
        attach_attempts(error, tuple(self.attempts))
        return error

    @contextmanager
    def attached_to_whatever_ends_it(self) -> Iterator[None]:
        """Attach the attempts to any exception that leaves the call: a cancellation
        (CancelledError, or GeneratorExit for a stream closed early) arrives wherever the
        call waits, with nothing of the walk on it otherwise."""
        try:
            yield
        except BaseException as exc:
            attach_attempts(exc, tuple(self.attempts))
            raise


async def _closing(events: AsyncIterator[StreamEvent]) -> AsyncGenerator[StreamEvent, None]:
    """`events`, closed when this generator is, so the upstream request is closed too.

    The adapter protocol promises only an AsyncIterator; every adapter's is a generator.
    """
    try:
        async for event in events:
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def _final_response(
    response: CompletionResponse | None, deployment: Deployment
) -> CompletionResponse:
    """The response that ended a stream; a stream without one was cut short."""
    if response is None:
        raise malformed_response_error(deployment.provider, "the stream ended without its usage")
    return response


class Router:
    """Routes completions by model alias over the deployments of a routing table.

    `adapters` has one adapter per deployment name of `routing`. `clock` (monotonic
    seconds) drives the breakers; `sleep` and `random` (a draw from [0, 1)) drive the
    retry waits; `deadline_clock` is the clock deadlines are on (None: the running event
    loop's, as `deadline_after` gives them). All four are injectable for tests.
    """

    def __init__(
        self,
        routing: RoutingTable,
        adapters: Mapping[str, ProviderAdapter],
        *,
        retry_policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random_module.random,
        deadline_clock: Callable[[], float] | None = None,
    ) -> None:
        deployments = [d for alias in routing.aliases.values() for d in alias.deployments]
        missing = sorted(d.name for d in deployments if d.name not in adapters)
        if missing:
            raise ValueError(f"no adapter for the deployments {', '.join(missing)}")
        self._routing = routing
        self._adapters = dict(adapters)
        self._retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        self._random = random
        self._deadline_clock = deadline_clock
        self._in_flight = {d.name: 0 for d in deployments}
        self._breakers = {
            d.name: CircuitBreaker(
                failure_threshold=d.failure_threshold, cool_down=d.cool_down_seconds, clock=clock
            )
            for d in deployments
        }
        self._logger = get_logger(__name__)

    def breaker(self, deployment: str) -> CircuitBreaker:
        """The circuit breaker of the deployment called `deployment` (KeyError if none)."""
        return self._breakers[deployment]

    async def complete(
        self,
        request: CompletionRequest,
        *,
        model: str,
        fallback_models: Sequence[str] = (),
        deadline: float | None = None,
    ) -> RoutedCompletion:
        """The completion from the first deployment that answers; see the module docstring."""
        started = time.monotonic()
        walk = _Walk(model)
        with walk.attached_to_whatever_ends_it():
            async with aclosing(self._slots(model, fallback_models, deadline, walk)) as slots:
                async for slot in slots:
                    adapter = self._adapters[slot.deployment.name]
                    attempt_started = time.monotonic()
                    try:
                        response = await adapter.complete(request, deadline=slot.deadline)
                    except MainmastError as exc:
                        self._failed(slot, walk, exc, time.monotonic() - attempt_started)
                        if slot.error is None:
                            raise walk.decorated(exc) from None
                        continue
                    except BaseException:
                        self._abandoned(slot, walk, time.monotonic() - attempt_started)
                        raise
                    return self._succeeded(slot, walk, response, attempt_started, started)
            raise walk.final_error()

    async def stream(
        self,
        request: CompletionRequest,
        *,
        model: str,
        fallback_models: Sequence[str] = (),
        deadline: float | None = None,
    ) -> AsyncIterator[RoutedStreamEvent]:
        """TextDeltas, then the RoutedCompletion; fails over only before the first delta."""
        started = time.monotonic()
        walk = _Walk(model)
        with walk.attached_to_whatever_ends_it():
            async with aclosing(self._slots(model, fallback_models, deadline, walk)) as slots:
                async for slot in slots:
                    adapter = self._adapters[slot.deployment.name]
                    attempt_started = time.monotonic()
                    output_began = False
                    response: CompletionResponse | None = None
                    try:
                        events = _closing(adapter.stream(request, deadline=slot.deadline))
                        async with aclosing(events):
                            async for event in events:
                                if isinstance(event, TextDelta):
                                    output_began = True
                                    yield event
                                else:
                                    response = event
                        response = _final_response(response, slot.deployment)
                    except MainmastError as exc:
                        self._failed(slot, walk, exc, time.monotonic() - attempt_started)
                        if output_began:
                            raise self._interrupted(slot, walk, exc) from exc
                        if slot.error is None:
                            raise walk.decorated(exc) from None
                        continue
                    except BaseException:
                        # Cancelled, or the consumer stopped reading (GeneratorExit): the
                        # adapter's stream is closed, and with it the upstream request.
                        self._abandoned(slot, walk, time.monotonic() - attempt_started)
                        raise
                    yield self._succeeded(slot, walk, response, attempt_started, started)
                    return
            raise walk.final_error()

    async def _slots(
        self,
        model: str,
        fallback_models: Sequence[str],
        deadline: float | None,
        walk: _Walk,
    ) -> AsyncGenerator[_Slot, None]:
        """Leave to try each deployment in turn, with retries and their waits in between.

        The consumer sets `slot.error` for a retryable failure and takes the next slot; it
        stops for a success or a failure it raises.
        """
        now = self._deadline_clock or asyncio.get_running_loop().time
        for alias_name in self.aliases_of(model, fallback_models):
            alias = self._routing.aliases[alias_name]
            for deployment in ordered_deployments(alias, self._random):
                breaker = self._breakers[deployment.name]
                limit = deployment.max_concurrent_requests
                for attempt_number in range(1, deployment.max_attempts + 1):
                    if deadline is not None and now() >= deadline:
                        return
                    if limit is not None and self._in_flight[deployment.name] >= limit:
                        walk.skip_busy(alias_name, deployment)
                        break
                    permit = breaker.try_acquire()
                    if permit is None:
                        walk.skip_open(alias_name, deployment, breaker.retry_after())
                        break
                    attempt_deadline = now() + deployment.timeout_seconds
                    if deadline is not None:
                        attempt_deadline = min(attempt_deadline, deadline)
                    slot = _Slot(alias_name, deployment, permit, attempt_deadline)
                    # The attempt runs while this generator waits at `yield`, a stream's
                    # included, so the count covers it whole.
                    self._in_flight[deployment.name] += 1
                    try:
                        yield slot
                    finally:
                        self._in_flight[deployment.name] -= 1
                    if slot.error is None or attempt_number == deployment.max_attempts:
                        break
                    remaining = None if deadline is None else deadline - now()
                    delay = self._retry_policy.delay_before_retry(
                        slot.error, attempt_number, random=self._random(), remaining=remaining
                    )
                    if delay is None:
                        break
                    await self._sleep(delay)

    def aliases_of(self, model: str, fallback_models: Sequence[str] = ()) -> list[str]:
        """The aliases a call walks, in order, each once; ModelNotFoundError (before any
        call is made) for a name the routing file does not have."""
        names = list(dict.fromkeys([model, *fallback_models]))
        for name in names:
            if self._routing.alias(name) is None:
                raise ModelNotFoundError(
                    f"There is no model {name!r} in the routing file.",
                    metadata={"model": name},
                )
        return names

    def _succeeded(
        self,
        slot: _Slot,
        walk: _Walk,
        response: CompletionResponse,
        attempt_started: float,
        started: float,
    ) -> RoutedCompletion:
        slot.permit.succeeded()
        walk.record(slot, AttemptOutcome.SUCCEEDED, time.monotonic() - attempt_started)
        return RoutedCompletion(
            response=response,
            model_alias=slot.model_alias,
            deployment=slot.deployment.name,
            attempts=tuple(walk.attempts),
            latency=timedelta(seconds=time.monotonic() - started),
        )

    def _failed(self, slot: _Slot, walk: _Walk, error: MainmastError, latency: float) -> None:
        """Record a failed attempt; `slot.error` is set when a retry or fallback may cure it."""
        if not isinstance(error, ProviderFailure):
            # Not the provider's doing (the adapter refused the input): no verdict on it.
            slot.permit.released()
            walk.record(slot, AttemptOutcome.REJECTED, latency, error)
            return
        outcome = outcome_of_failure(error.kind)
        if outcome is AttemptOutcome.REJECTED and error.upstream_http_status not in (401, 403):
            slot.permit.succeeded()  # it answered, to refuse this request: the deployment works
        else:
            slot.permit.failed()
        walk.record(slot, outcome, latency, error)
        self._logger.warning(
            "llm.attempt_failed",
            model_alias=slot.model_alias,
            deployment=slot.deployment.name,
            outcome=outcome.value,
            reason=error.reason,
            upstream_http_status=error.upstream_http_status,
        )
        error.metadata.setdefault("deployment", slot.deployment.name)
        if error.retryable:
            walk.last_error = error
            slot.error = error

    @staticmethod
    def _abandoned(slot: _Slot, walk: _Walk, latency: float) -> None:
        slot.permit.released()
        walk.record(slot, AttemptOutcome.CANCELLED, latency)

    @staticmethod
    def _interrupted(slot: _Slot, walk: _Walk, error: MainmastError) -> StreamInterruptedError:
        interrupted = StreamInterruptedError(
            f"The stream from the deployment {slot.deployment.name!r} was interrupted after "
            f"output began, so it could not fail over: {error.message}",
            metadata={
                "deployment": slot.deployment.name,
                "provider": slot.deployment.provider.value,
                "output_began": "true",
                "cause_reason": error.reason,
            },
        )
        walk.decorated(interrupted)
        return interrupted
