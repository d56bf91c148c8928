"""Provider failures, classified in one place into mainmast.errors classes.

Every adapter turns what went wrong upstream into one of five classes, each a
`mainmast.errors` class the rest of the platform already knows, plus `ProviderFailure`,
which says which provider failed, how (`kind`), with which HTTP status, and whether
trying again (the same deployment later, or another one) may help (`retryable`)::

    ProviderRateLimitedError       RateLimitedError         429                    retryable
    ProviderTimeoutError           DeadlineExceededError    408, deadline, timeout retryable
    ProviderUnavailableError       UnavailableError         connection, 5xx, 529,  retryable
                                                            malformed or truncated
    ProviderRejectedRequestError   ValidationError          other 4xx              not retryable
    ProviderAuthenticationError    FailedPreconditionError  401, 403               not retryable

Messages never carry credentials: a 401's body (which may quote part of the key) is left
out, and the provider's explanation of any other failure is scrubbed of the adapter's secrets.
"""

from __future__ import annotations

import email.utils
import enum
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final, TypeVar

import orjson

from mainmast.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from mainmast.llm import LLM_ERROR_DOMAIN

from ._completion import ProviderKind

# Enough of a provider's explanation to act on, small enough for a status trailer.
_MAX_DETAIL_LENGTH: Final = 500
_SCRUBBED: Final = "***"
# Anthropic's "overloaded" status; any 5xx is handled alike, this one is named for readers.
HTTP_OVERLOADED: Final = 529


class FailureKind(enum.StrEnum):
    """How a provider call failed; the attempt outcomes of the contract, minus success."""

    RATE_LIMITED = "rate_limited"
    TIMED_OUT = "timed_out"
    CONNECTION_FAILED = "connection_failed"
    SERVER_ERROR = "server_error"
    MALFORMED_RESPONSE = "malformed_response"
    REJECTED = "rejected"
    AUTHENTICATION_FAILED = "authentication_failed"

    @property
    def retryable(self) -> bool:
        """Whether another try (later, or elsewhere) may succeed."""
        return self not in (FailureKind.REJECTED, FailureKind.AUTHENTICATION_FAILED)


class ProviderFailure:
    """What every provider error adds to its mainmast.errors class.

    The class defaults are what an error rebuilt from the wire (which carries none of this
    but its class) says.
    """

    provider: ProviderKind | None = None
    """The provider that failed; None when unknown."""
    kind: FailureKind = FailureKind.SERVER_ERROR
    """How it failed."""
    upstream_http_status: int = 0
    """The provider's HTTP status, 0 when no response arrived."""

    @property
    def retryable(self) -> bool:
        """Whether another try (later, or on another deployment) may succeed."""
        return self.kind.retryable


class ProviderRateLimitedError(ProviderFailure, RateLimitedError):
    """The provider throttled (HTTP 429); `retry_after` comes from its headers."""

    default_reason = "PROVIDER_RATE_LIMITED"
    default_domain = LLM_ERROR_DOMAIN
    kind = FailureKind.RATE_LIMITED


class ProviderTimeoutError(ProviderFailure, DeadlineExceededError):
    """The provider did not answer within the deadline."""

    default_reason = "PROVIDER_TIMEOUT"
    default_domain = LLM_ERROR_DOMAIN
    kind = FailureKind.TIMED_OUT


class ProviderUnavailableError(ProviderFailure, UnavailableError):
    """The provider could not be reached, failed (5xx), was overloaded, or answered garbage."""

    default_reason = "PROVIDER_UNAVAILABLE"
    default_domain = LLM_ERROR_DOMAIN


class ProviderRejectedRequestError(ProviderFailure, ValidationError):
    """The provider rejected the request (4xx other than 401, 403, 408 and 429)."""

    default_reason = "PROVIDER_REJECTED_REQUEST"
    default_domain = LLM_ERROR_DOMAIN
    kind = FailureKind.REJECTED


class ProviderAuthenticationError(ProviderFailure, FailedPreconditionError):
    """The provider refused the service's credentials (401 or 403)."""

    default_reason = "PROVIDER_AUTHENTICATION_FAILED"
    default_domain = LLM_ERROR_DOMAIN
    kind = FailureKind.AUTHENTICATION_FAILED


ProviderError = (
    ProviderRateLimitedError
    | ProviderTimeoutError
    | ProviderUnavailableError
    | ProviderRejectedRequestError
    | ProviderAuthenticationError
)
"""Any error an adapter raises for a failed provider call."""


def is_retryable(error: BaseException) -> bool:
    """Whether `error` is a provider failure another try may cure."""
    return isinstance(error, ProviderFailure) and error.retryable


_Failure = TypeVar("_Failure", bound=ProviderFailure)


def _metadata(provider: ProviderKind, status: int) -> dict[str, str]:
    return {"provider": provider.value, "upstream_http_status": str(status)}


def _stamped(error: _Failure, provider: ProviderKind, kind: FailureKind, status: int) -> _Failure:
    error.provider = provider
    error.kind = kind
    error.upstream_http_status = status
    return error


def timeout_error(provider: ProviderKind, *, upstream_http_status: int = 0) -> ProviderError:
    """The provider did not answer (or finish answering) in time."""
    return _stamped(
        ProviderTimeoutError(
            f"The {provider.value} provider did not answer in time.",
            metadata=_metadata(provider, upstream_http_status),
        ),
        provider,
        FailureKind.TIMED_OUT,
        upstream_http_status,
    )


def connection_error(provider: ProviderKind, *, upstream_http_status: int = 0) -> ProviderError:
    """The connection to the provider failed or dropped."""
    return _stamped(
        ProviderUnavailableError(
            f"The connection to the {provider.value} provider failed.",
            metadata=_metadata(provider, upstream_http_status),
        ),
        provider,
        FailureKind.CONNECTION_FAILED,
        upstream_http_status,
    )


def malformed_response_error(
    provider: ProviderKind, what: str, *, upstream_http_status: int = 200
) -> ProviderError:
    """The provider's answer could not be understood, or its stream ended early.

    `what` says what was wrong, in words of our own (never the provider's bytes).
    """
    return _stamped(
        ProviderUnavailableError(
            f"The {provider.value} provider sent a malformed response: {what}.",
            metadata=_metadata(provider, upstream_http_status),
        ),
        provider,
        FailureKind.MALFORMED_RESPONSE,
        upstream_http_status,
    )


def error_for_http_status(
    provider: ProviderKind,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Iterable[str] = (),
) -> ProviderError:
    """The error for a provider's answer with an HTTP status other than 2xx."""
    metadata = _metadata(provider, status)
    name = provider.value
    if status == 429:
        return _stamped(
            ProviderRateLimitedError(
                f"The {name} provider is rate limiting requests (HTTP 429).",
                retry_after=retry_after_seconds(headers),
                metadata=metadata,
            ),
            provider,
            FailureKind.RATE_LIMITED,
            status,
        )
    if status in (401, 403):
        # The body is left out: a provider may quote part of the key it refused.
        return _stamped(
            ProviderAuthenticationError(
                f"The {name} provider refused the service's credentials (HTTP {status}).",
                metadata=metadata,
            ),
            provider,
            FailureKind.AUTHENTICATION_FAILED,
            status,
        )
    if status == 408:
        return timeout_error(provider, upstream_http_status=status)
    detail = _scrubbed(provider_error_detail(body), secrets)
    explained = f": {detail}" if detail else "."
    if 400 <= status < 500:
        return _stamped(
            ProviderRejectedRequestError(
                f"The {name} provider rejected the request (HTTP {status}){explained}",
                metadata=metadata,
            ),
            provider,
            FailureKind.REJECTED,
            status,
        )
    if status >= 500:
        overloaded = " (overloaded)" if status == HTTP_OVERLOADED else ""
        return _stamped(
            ProviderUnavailableError(
                f"The {name} provider failed (HTTP {status}){overloaded}{explained}",
                retry_after=retry_after_seconds(headers),
                metadata=metadata,
            ),
            provider,
            FailureKind.SERVER_ERROR,
            status,
        )
    return malformed_response_error(
        provider, f"unexpected HTTP status {status}", upstream_http_status=status
    )


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """How long the provider asks us to wait: `retry-after-ms`, else `Retry-After`.

    `Retry-After` may be seconds or an HTTP date; a value that is neither is ignored.
    `headers` must look names up case-insensitively, as httpx.Headers does.
    """
    milliseconds = _non_negative_number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _non_negative_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    # A year caps absurd values while keeping them within what RetryInfo can carry.
    return min(number, 366 * 86400.0) if math.isfinite(number) and number >= 0 else None


def provider_error_detail(body: bytes) -> str:
    """The human explanation in a provider's error body, or "" when there is none.

    Understands OpenAI's and Gemini's `{"error": {"message": ...}}`, Anthropic's
    `{"type": "error", "error": {...}}` and Ollama's `{"error": "..."}`.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return error[:_MAX_DETAIL_LENGTH] if isinstance(error, str) else ""


def _scrubbed(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _SCRUBBED)
    return text


def error_in_stream(
    provider: ProviderKind, status: int, detail: str, *, secrets: Iterable[str] = ()
) -> ProviderError:
    """The error for a failure a provider reports inside a 200 stream.

    `status` is the HTTP status the provider's error type stands for (500 when it names
    none), so a failure is classified alike whether it came as a status or as an event.
    """
    body = orjson.dumps({"error": {"message": detail}})
    return error_for_http_status(provider, status, {}, body, secrets=secrets)
