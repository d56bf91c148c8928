"""Between the wire and the service: protobuf messages to dataclasses and back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from google.protobuf import duration_pb2

from mainmast.errors import FieldViolation, ValidationError
from mainmast.llm import LLM_ERROR_DOMAIN
from mainmast.llm.v1 import resources_pb2

from ._completion import ChatMessage, CompletionRequest, FinishReason, ProviderKind, Role
from ._routing import ModelAlias
from ._routing_results import Attempt, AttemptOutcome, RoutedCompletion
from ._usage_query import DailyUsageTotal

_ROLES: Final[Mapping[int, Role]] = {
    resources_pb2.ROLE_USER: Role.USER,
    resources_pb2.ROLE_ASSISTANT: Role.ASSISTANT,
}

_PROVIDERS: Final[Mapping[ProviderKind, resources_pb2.Provider.ValueType]] = {
    ProviderKind.OPENAI: resources_pb2.PROVIDER_OPENAI,
    ProviderKind.AZURE_OPENAI: resources_pb2.PROVIDER_AZURE_OPENAI,
    ProviderKind.ANTHROPIC: resources_pb2.PROVIDER_ANTHROPIC,
    ProviderKind.GEMINI: resources_pb2.PROVIDER_GEMINI,
    ProviderKind.OLLAMA: resources_pb2.PROVIDER_OLLAMA,
    ProviderKind.DEV: resources_pb2.PROVIDER_DEV,
}

_FINISH_REASONS: Final[Mapping[FinishReason, resources_pb2.FinishReason.ValueType]] = {
    FinishReason.STOP: resources_pb2.FINISH_REASON_STOP,
    FinishReason.LENGTH: resources_pb2.FINISH_REASON_LENGTH,
    FinishReason.CONTENT_FILTER: resources_pb2.FINISH_REASON_CONTENT_FILTER,
    FinishReason.OTHER: resources_pb2.FINISH_REASON_OTHER,
}

_Outcome = resources_pb2.Attempt.Outcome
_OUTCOMES: Final[Mapping[AttemptOutcome, resources_pb2.Attempt.Outcome.ValueType]] = {
    AttemptOutcome.SUCCEEDED: _Outcome.OUTCOME_SUCCEEDED,
    AttemptOutcome.RATE_LIMITED: _Outcome.OUTCOME_RATE_LIMITED,
    AttemptOutcome.TIMED_OUT: _Outcome.OUTCOME_TIMED_OUT,
    AttemptOutcome.CONNECTION_FAILED: _Outcome.OUTCOME_CONNECTION_FAILED,
    AttemptOutcome.SERVER_ERROR: _Outcome.OUTCOME_SERVER_ERROR,
    AttemptOutcome.MALFORMED_RESPONSE: _Outcome.OUTCOME_MALFORMED_RESPONSE,
    AttemptOutcome.REJECTED: _Outcome.OUTCOME_REJECTED,
    AttemptOutcome.CIRCUIT_OPEN: _Outcome.OUTCOME_CIRCUIT_OPEN,
    AttemptOutcome.CANCELLED: _Outcome.OUTCOME_CANCELLED,
}


def completion_request(message: resources_pb2.CompletionInput) -> CompletionRequest:
    """The normalised request of `message`; ValidationError (INVALID_COMPLETION_INPUT) if bad.

    The model and fallbacks are the router's business, not the request's.
    """
    violations: list[FieldViolation] = []
    if not message.model:
        violations.append(FieldViolation("input.model", "a model alias is required"))
    messages: list[ChatMessage] = []
    for index, entry in enumerate(message.messages):
        role = _ROLES.get(entry.role)
        if role is None:
            violations.append(
                FieldViolation(f"input.messages[{index}].role", "must be USER or ASSISTANT")
            )
            continue
        messages.append(ChatMessage(role, entry.content))
    if violations:
        raise ValidationError(
            "The completion input is invalid: "
            + "; ".join(f"{v.field}: {v.description}" for v in violations),
            field_violations=violations,
            reason="INVALID_COMPLETION_INPUT",
            domain=LLM_ERROR_DOMAIN,
        )
    return CompletionRequest(
        messages=tuple(messages),
        system=message.system,
        temperature=message.temperature if message.HasField("temperature") else None,
        max_tokens=message.max_tokens if message.HasField("max_tokens") else None,
        stop=tuple(message.stop_sequences),
        json_mode=message.response_format == resources_pb2.RESPONSE_FORMAT_JSON_OBJECT,
    )


def provider_message(provider: ProviderKind) -> resources_pb2.Provider.ValueType:
    """The contract's Provider value of `provider`."""
    return _PROVIDERS[provider]


def _duration(value: timedelta) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def attempt_message(attempt: Attempt) -> resources_pb2.Attempt:
    """The contract's Attempt of `attempt`."""
    return resources_pb2.Attempt(
        model_alias=attempt.model_alias,
        deployment=attempt.deployment,
        provider=provider_message(attempt.provider),
        model=attempt.model,
        outcome=_OUTCOMES[attempt.outcome],
        latency=_duration(attempt.latency),
        upstream_http_status=attempt.upstream_http_status,
    )


def completion_message(routed: RoutedCompletion) -> resources_pb2.Completion:
    """The contract's Completion of a routed completion, its attempts included."""
    response = routed.response
    return resources_pb2.Completion(
        text=response.text,
        finish_reason=_FINISH_REASONS[response.finish_reason],
        provider_finish_reason=response.provider_finish_reason,
        usage=resources_pb2.Usage(
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            total_tokens=response.total_tokens,
        ),
        provider=provider_message(response.provider),
        model_alias=routed.model_alias,
        model=response.model,
        deployment=routed.deployment,
        latency=_duration(routed.latency),
        attempts=[attempt_message(attempt) for attempt in routed.attempts],
    )


def model_message(alias: ModelAlias) -> resources_pb2.Model:
    """The contract's Model of a routing alias, deployments in file order."""
    return resources_pb2.Model(
        alias=alias.name,
        deployments=[
            resources_pb2.Deployment(
                name=deployment.name,
                provider=provider_message(deployment.provider),
                model=deployment.model,
            )
            for deployment in alias.deployments
        ],
    )


def daily_usage_message(total: DailyUsageTotal, tenant_name: str) -> resources_pb2.DailyUsage:
    """The contract's DailyUsage of one ledger total; `tenant_name` is its resource name."""
    return resources_pb2.DailyUsage(
        tenant=tenant_name,
        model_alias=total.model_alias,
        date=total.date.isoformat(),
        request_count=total.request_count,
        failed_request_count=total.failed_request_count,
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        cost_micros=total.cost_micros,
        currency_code=total.currency_code,
    )
