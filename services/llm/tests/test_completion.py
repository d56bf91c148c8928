"""The normalised request is valid by construction; the response adds its tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mainmast.errors import ValidationError
from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    ProviderKind,
    Role,
)

HI = ChatMessage(Role.USER, "Hi")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"messages": ()}, "messages"),
        ({"messages": (HI, ChatMessage(Role.ASSISTANT, "Hello"))}, "messages"),
        ({"messages": (HI, "Hi")}, "messages[1]"),
        ({"messages": (HI,), "temperature": 2.5}, "temperature"),
        ({"messages": (HI,), "temperature": float("nan")}, "temperature"),
        ({"messages": (HI,), "max_tokens": 0}, "max_tokens"),
        ({"messages": (HI,), "stop": ("a", "b", "c", "d", "e")}, "stop"),
        ({"messages": (HI,), "stop": ("",)}, "stop"),
    ],
)
def test_an_invalid_request_is_a_validation_error_naming_the_field(arguments, field):
    with pytest.raises(ValidationError) as caught:
        CompletionRequest(**arguments)

    assert caught.value.reason == "INVALID_COMPLETION_INPUT"
    assert caught.value.domain == "llm.mainmast.dev"
    assert field in [violation.field for violation in caught.value.field_violations]


def test_a_valid_request_keeps_its_fields():
    request = CompletionRequest(
        messages=(HI,), system="s", temperature=0.0, max_tokens=1, stop=("x",), json_mode=True
    )

    assert (request.temperature, request.max_tokens, request.stop) == (0.0, 1, ("x",))


def test_total_tokens_adds_prompt_and_completion():
    response = CompletionResponse(
        text="",
        finish_reason=FinishReason.STOP,
        provider_finish_reason="stop",
        prompt_tokens=7,
        completion_tokens=5,
        provider=ProviderKind.DEV,
        model="m",
        latency=timedelta(0),
    )

    assert response.total_tokens == 12
