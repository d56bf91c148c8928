"""What LlmClient returns: frozen dataclasses built from the contract's messages.

Callers never handle raw protobuf: enums become `StrEnum`s (with an UNSPECIFIED member for
a value this client does not know, as a newer service may send), durations become
`timedelta`s, days become `date`s, repeated fields become tuples.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from google.protobuf.duration_pb2 import Duration

from mainmast._proto_values import enum_member

from .v1 import resources_pb2

_MICROS: Final = Decimal(1_000_000)


class Provider(enum.StrEnum):
    """The provider API that served a completion or backs a deployment."""

    OPENAI = "openai"
    """OpenAI chat completions, or any OpenAI-compatible server."""
    AZURE_OPENAI = "azure_openai"
    """Azure OpenAI deployments."""
    ANTHROPIC = "anthropic"
    """Anthropic Messages API."""
    GEMINI = "gemini"
    """Google Gemini."""
    OLLAMA = "ollama"
    """Ollama."""
    DEV = "dev"
    """The built-in development provider: deterministic, no model behind it."""
    UNSPECIFIED = "unspecified"
    """A provider this client does not know."""


class FinishReason(enum.StrEnum):
    """Why the model stopped, normalised across providers."""

    STOP = "stop"
    """The model finished its answer, or produced a stop sequence."""
    LENGTH = "length"
    """The answer reached `max_tokens` (or the model's limit)."""
    CONTENT_FILTER = "content_filter"
    """The provider's safety or content filter cut the answer."""
    OTHER = "other"
    """Any other provider reason; see `Completion.provider_finish_reason`."""
    UNSPECIFIED = "unspecified"
    """A reason this client does not know."""


class AttemptOutcome(enum.StrEnum):
    """How one attempt of a completion ended."""

    SUCCEEDED = "succeeded"
    """The deployment answered; its answer is the completion."""
    RATE_LIMITED = "rate_limited"
    """The provider throttled (HTTP 429)."""
    TIMED_OUT = "timed_out"
    """No answer within the deployment's timeout or the call's deadline."""
    CONNECTION_FAILED = "connection_failed"
    """The connection failed or dropped."""
    SERVER_ERROR = "server_error"
    """The provider failed or said it was overloaded (HTTP 5xx, 529)."""
    MALFORMED_RESPONSE = "malformed_response"
    """The provider's answer was malformed or its stream truncated."""
    REJECTED = "rejected"
    """The provider rejected the request (HTTP 4xx other than 429)."""
    CIRCUIT_OPEN = "circuit_open"
    """Skipped without a call: the deployment's circuit breaker is open."""
    CANCELLED = "cancelled"
    """The caller cancelled the call."""
    UNSPECIFIED = "unspecified"
    """An outcome this client does not know."""


class Role(enum.StrEnum):
    """Who wrote a message of the conversation."""

    USER = "user"
    """The end user, or the application speaking for it."""
    ASSISTANT = "assistant"
    """The model, in earlier turns."""


def _provider(value: resources_pb2.Provider.ValueType) -> Provider:
    return enum_member(Provider, resources_pb2.Provider.Name, value, "PROVIDER_")


def _timedelta(value: Duration) -> timedelta:
    return value.ToTimedelta()


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation, for `LlmClient.complete(messages=[...])`."""

    role: Role
    """Who wrote it."""
    content: str
    """Its text."""

    @classmethod
    def user(cls, content: str) -> Message:
        """A message of the user."""
        return cls(Role.USER, content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        """A message of the model, from an earlier turn."""
        return cls(Role.ASSISTANT, content)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a completion used, as the provider counted them."""

    prompt_tokens: int
    """Tokens of the input (system instruction and messages)."""
    completion_tokens: int
    """Tokens of the answer."""
    total_tokens: int
    """Both together."""

    @classmethod
    def from_proto(cls, message: resources_pb2.Usage) -> Usage:
        """The usage of a contract message."""
        return cls(message.prompt_tokens, message.completion_tokens, message.total_tokens)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one deployment while serving a completion."""

    model_alias: str
    """The alias it served: the requested model or a fallback."""
    deployment: str
    """The deployment, as the service's routing file names it."""
    provider: Provider
    """The deployment's provider."""
    model: str
    """The provider's model name."""
    outcome: AttemptOutcome
    """How it ended."""
    latency: timedelta
    """From sending the request to the last byte or the failure."""
    upstream_http_status: int
    """The provider's HTTP status; 0 when no response arrived."""

    @classmethod
    def from_proto(cls, message: resources_pb2.Attempt) -> Attempt:
        """The attempt of a contract message."""
        return cls(
            model_alias=message.model_alias,
            deployment=message.deployment,
            provider=_provider(message.provider),
            model=message.model,
            outcome=enum_member(
                AttemptOutcome, resources_pb2.Attempt.Outcome.Name, message.outcome, "OUTCOME_"
            ),
            latency=_timedelta(message.latency),
            upstream_http_status=message.upstream_http_status,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished completion: the answer, who gave it, what it used, how it was reached."""

    text: str
    """The generated text (a JSON object for `json_mode`)."""
    finish_reason: FinishReason
    """Why the model stopped."""
    provider_finish_reason: str
    """The provider's own finish reason, e.g. "end_turn" or "stop"."""
    usage: Usage
    """Tokens used."""
    provider: Provider
    """The provider that answered (DEV says no model wrote this)."""
    model_alias: str
    """The alias that answered: the requested model or a fallback."""
    model: str
    """The provider's model name that answered."""
    deployment: str
    """The deployment that answered."""
    latency: timedelta
    """The whole call inside the service, retries and fallbacks included."""
    attempts: tuple[Attempt, ...]
    """Every attempt in order, the successful one last."""

    @classmethod
    def from_proto(cls, message: resources_pb2.Completion) -> Completion:
        """The completion of a contract message."""
        return cls(
            text=message.text,
            finish_reason=enum_member(
                FinishReason,
                resources_pb2.FinishReason.Name,
                message.finish_reason,
                "FINISH_REASON_",
            ),
            provider_finish_reason=message.provider_finish_reason,
            usage=Usage.from_proto(message.usage),
            provider=_provider(message.provider),
            model_alias=message.model_alias,
            model=message.model,
            deployment=message.deployment,
            latency=_timedelta(message.latency),
            attempts=tuple(Attempt.from_proto(attempt) for attempt in message.attempts),
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of a streamed answer."""

    text: str
    """The piece of text."""


StreamEvent = TextDelta | Completion
"""What `LlmClient.stream` yields: TextDeltas, then one Completion (with usage), last."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployment of a model alias: one provider model at one endpoint."""

    name: str
    """The deployment's name in the routing file."""
    provider: Provider
    """Its provider."""
    model: str
    """The provider's model name."""


@dataclass(frozen=True, slots=True)
class Model:
    """A model alias callers may ask for, with its deployments in the order they are tried."""

    alias: str
    """The alias, e.g. `gpt-4`, to pass as `model`."""
    deployments: tuple[Deployment, ...]
    """Its deployments, in the order they are tried."""

    @classmethod
    def from_proto(cls, message: resources_pb2.Model) -> Model:
        """The model of a contract message."""
        return cls(
            alias=message.alias,
            deployments=tuple(
                Deployment(d.name, _provider(d.provider), d.model) for d in message.deployments
            ),
        )


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """The usage of one model alias by one tenant on one UTC day."""

    tenant: str
    """Resource name of the tenant, e.g. `tenants/acme`."""
    model_alias: str
    """The model alias (as the caller asked for it)."""
    date: date
    """The UTC day."""
    request_count: int
    """Calls made, failed and refused ones included."""
    failed_request_count: int
    """Calls that failed or were refused."""
    prompt_tokens: int
    """Input tokens."""
    completion_tokens: int
    """Generated tokens."""
    cost_micros: int
    """Cost from the service's price table, in millionths of `currency_code`."""
    currency_code: str
    """ISO 4217 code of the cost's currency."""

    @property
    def cost(self) -> Decimal:
        """The cost in whole units of `currency_code`, exactly."""
        return Decimal(self.cost_micros) / _MICROS

    @classmethod
    def from_proto(cls, message: resources_pb2.DailyUsage) -> DailyUsage:
        """The daily usage of a contract message."""
        return cls(
            tenant=message.tenant,
            model_alias=message.model_alias,
            date=date.fromisoformat(message.date),
            request_count=message.request_count,
            failed_request_count=message.failed_request_count,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            cost_micros=message.cost_micros,
            currency_code=message.currency_code,
        )
