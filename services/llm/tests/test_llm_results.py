"""mainmast.llm's results: contract messages become typed, frozen values, and a value a newer
service may send that this client does not know becomes UNSPECIFIED, never an error."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from google.protobuf import duration_pb2

import mainmast.llm
from mainmast.llm import (
    Attempt,
    AttemptOutcome,
    Completion,
    DailyUsage,
    FinishReason,
    Message,
    Model,
    Provider,
    Role,
)
from mainmast.llm.v1 import resources_pb2


def test_the_public_names_of_mainmast_llm_are_pinned() -> None:
    assert mainmast.llm.__all__ == [
        "LLM_ERROR_DOMAIN",
        "Attempt",
        "AttemptOutcome",
        "BearerToken",
        "Completion",
        "DailyUsage",
        "Deployment",
        "FinishReason",
        "LlmClient",
        "LlmClientConfig",
        "Message",
        "Model",
        "Provider",
        "Role",
        "StreamEvent",
        "TextDelta",
        "Usage",
    ]
    assert all(hasattr(mainmast.llm, name) for name in mainmast.llm.__all__)


def test_every_provider_outcome_and_finish_reason_of_the_contract_has_its_member() -> None:
    for value in resources_pb2.Provider.values()[1:]:
        assert (
            Model.from_proto(
                resources_pb2.Model(deployments=[resources_pb2.Deployment(provider=value)])
            )
            .deployments[0]
            .provider
            is not Provider.UNSPECIFIED
        )
    for value in resources_pb2.Attempt.Outcome.values()[1:]:
        attempt = Attempt.from_proto(resources_pb2.Attempt(outcome=value))
        assert attempt.outcome is not AttemptOutcome.UNSPECIFIED
    for value in resources_pb2.FinishReason.values()[1:]:
        completion = Completion.from_proto(resources_pb2.Completion(finish_reason=value))
        assert completion.finish_reason is not FinishReason.UNSPECIFIED


def test_a_completion_becomes_typed_values() -> None:
    latency = duration_pb2.Duration()
    latency.FromTimedelta(timedelta(milliseconds=250))
    completion = Completion.from_proto(
        resources_pb2.Completion(
            text="Hello",
            finish_reason=resources_pb2.FINISH_REASON_CONTENT_FILTER,
            provider=resources_pb2.PROVIDER_AZURE_OPENAI,
            latency=latency,
            attempts=[
                resources_pb2.Attempt(
                    deployment="azure-eu",
                    outcome=resources_pb2.Attempt.Outcome.OUTCOME_MALFORMED_RESPONSE,
                    upstream_http_status=200,
                )
            ],
        )
    )

    assert completion.provider is Provider.AZURE_OPENAI
    assert completion.finish_reason is FinishReason.CONTENT_FILTER
    assert completion.latency == timedelta(milliseconds=250)
    (attempt,) = completion.attempts
    assert (attempt.deployment, attempt.outcome) == (
        "azure-eu",
        AttemptOutcome.MALFORMED_RESPONSE,
    )


@pytest.mark.parametrize("unknown", [0, 99])
def test_a_value_this_client_does_not_know_is_unspecified(unknown: int) -> None:
    completion = Completion.from_proto(
        resources_pb2.Completion(
            provider=unknown,  # type: ignore[arg-type]
            finish_reason=unknown,  # type: ignore[arg-type]
            attempts=[resources_pb2.Attempt(outcome=unknown)],  # type: ignore[arg-type]
        )
    )

    assert completion.provider is Provider.UNSPECIFIED
    assert completion.finish_reason is FinishReason.UNSPECIFIED
    assert completion.attempts[0].outcome is AttemptOutcome.UNSPECIFIED


def test_a_daily_usage_has_its_day_and_its_exact_cost() -> None:
    usage = DailyUsage.from_proto(
        resources_pb2.DailyUsage(
            tenant="tenants/acme",
            model_alias="gpt-4",
            date="2026-03-01",
            request_count=3,
            failed_request_count=1,
            cost_micros=1_234_567,
            currency_code="EUR",
        )
    )

    assert usage.date == date(2026, 3, 1)
    assert usage.cost == Decimal("1.234567")
    assert (usage.request_count, usage.failed_request_count) == (3, 1)


def test_messages_are_made_by_role() -> None:
    assert Message.user("hi") == Message(Role.USER, "hi")
    assert Message.assistant("hello") == Message(Role.ASSISTANT, "hello")
