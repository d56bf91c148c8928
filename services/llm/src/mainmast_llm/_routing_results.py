"""What the router answers: the completion with every attempt, or an error that lists them.

Each try of a deployment is an `Attempt`; a `RoutedCompletion` carries them all, the
successful one last. When no deployment answers, the router raises the last failure
(a provider error, or one of the errors below) with the attempts attached, which
`attempts_of(error)` reads back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from mainmast.errors import (
    DeadlineExceededError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)
from mainmast.llm import LLM_ERROR_DOMAIN

from ._completion import CompletionResponse, ProviderKind
from ._provider_errors import FailureKind

# Where the attempts ride on an error: errors of many classes (the adapters') carry them,
# so a mixin cannot, and a registry beside them would be module state.
_ATTEMPTS_ATTRIBUTE: Final = "_mainmast_llm_attempts"


class AttemptOutcome(enum.StrEnum):
    """How one attempt ended (the Attempt.Outcome of the contract)."""

    SUCCEEDED = "succeeded"
    RATE_LIMITED = "rate_limited"
    TIMED_OUT = "timed_out"
    CONNECTION_FAILED = "connection_failed"
    SERVER_ERROR = "server_error"
    MALFORMED_RESPONSE = "malformed_response"
    REJECTED = "rejected"
    CIRCUIT_OPEN = "circuit_open"
    CANCELLED = "cancelled"


_OUTCOME_OF_FAILURE: Final = {
    FailureKind.RATE_LIMITED: AttemptOutcome.RATE_LIMITED,
    FailureKind.TIMED_OUT: AttemptOutcome.TIMED_OUT,
    FailureKind.CONNECTION_FAILED: AttemptOutcome.CONNECTION_FAILED,
    FailureKind.SERVER_ERROR: AttemptOutcome.SERVER_ERROR,
    FailureKind.MALFORMED_RESPONSE: AttemptOutcome.MALFORMED_RESPONSE,
    FailureKind.REJECTED: AttemptOutcome.REJECTED,
    # The contract's REJECTED is every 4xx but 429; a refused key is one of them.
    FailureKind.AUTHENTICATION_FAILED: AttemptOutcome.REJECTED,
}


def outcome_of_failure(kind: FailureKind) -> AttemptOutcome:
    """The attempt outcome of a provider failure of this kind."""
    return _OUTCOME_OF_FAILURE[kind]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one deployment."""

    model_alias: str
    """The alias it served: the requested model or one of the fallbacks."""
    deployment: str
    """The deployment, as the routing file names it."""
    provider: ProviderKind
    """The deployment's provider."""
    model: str
    """The deployment's model name."""
    outcome: AttemptOutcome
    """How it ended."""
    latency: timedelta
    """From sending the request to the last byte or the failure; zero when skipped."""
    upstream_http_status: int = 0
    """The provider's HTTP status; 0 when no response arrived."""
    error_reason: str = ""
    """The failure's reason (`PROVIDER_UNAVAILABLE`, `CIRCUIT_OPEN`); empty on success."""


@dataclass(frozen=True, slots=True)
class RoutedCompletion:
    """A completion and how it was reached."""

    response: CompletionResponse
    """The answer of the deployment that succeeded."""
    model_alias: str
    """The alias that answered: the requested model or one of the fallbacks."""
    deployment: str
    """The deployment that answered."""
    attempts: tuple[Attempt, ...]
    """Every attempt in order, the successful one last."""
    latency: timedelta
    """The whole call, retries, waits and fallbacks included."""


def attach_attempts(error: BaseException, attempts: tuple[Attempt, ...]) -> None:
    """Record on `error` the attempts that led to it."""
    setattr(error, _ATTEMPTS_ATTRIBUTE, attempts)


def attempts_of(error: BaseException) -> tuple[Attempt, ...]:
    """The attempts the router tried before raising `error`; () for any other error."""
    attempts = getattr(error, _ATTEMPTS_ATTRIBUTE, ())
    return attempts if isinstance(attempts, tuple) else ()


class ModelNotFoundError(NotFoundError):
    """The routing file has no alias of the name asked for."""

    default_reason = "MODEL_NOT_FOUND"
    default_domain = LLM_ERROR_DOMAIN


class CircuitOpenError(UnavailableError):
    """Every deployment's breaker was open, so no call was made; retry after the cool-down."""

    default_reason = "CIRCUIT_OPEN"
    default_domain = LLM_ERROR_DOMAIN


class DeploymentAtCapacityError(RateLimitedError):
    """A deployment had its `max_concurrent_requests` in flight, so it was not called.

    To the caller this is the provider's capacity running out, hence the contract's
    PROVIDER_RATE_LIMITED reason.
    """

    default_reason = "PROVIDER_RATE_LIMITED"
    default_domain = LLM_ERROR_DOMAIN


class StreamInterruptedError(UnavailableError):
    """The stream failed after text had reached the caller, so it could not fail over."""

    default_reason = "STREAM_INTERRUPTED"
    default_domain = LLM_ERROR_DOMAIN


class RoutingDeadlineError(DeadlineExceededError):
    """The call's deadline passed before any deployment could be tried."""

    default_reason = "PROVIDER_TIMEOUT"
    default_domain = LLM_ERROR_DOMAIN
