"""Anthropic's Messages API: what goes on the wire, its stream events, and what comes back."""

from __future__ import annotations

import pytest

from mainmast_llm._anthropic import ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS, AnthropicAdapter
from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    Role,
    TextDelta,
)
from mainmast_llm._provider_errors import (
    FailureKind,
    ProviderRateLimitedError,
    ProviderRejectedRequestError,
    ProviderUnavailableError,
    is_retryable,
)

REQUEST = CompletionRequest(
    messages=(ChatMessage(Role.USER, "Hi"),),
    system="You are terse.",
    temperature=1.5,
    stop=("END", "STOP"),
)


def answering(body):
    async def handle(request, reply):
        await reply.send(200, body)

    return handle


def adapter_for(server, client, key):
    return AnthropicAdapter(client, model="claude-sonnet-4-0", api_key=key, base_url=server.url)


@pytest.fixture
def adapter(provider_server, http_client, api_key):
    """The adapter under test, pointed at the scripted server."""
    return adapter_for(provider_server, http_client, api_key)


async def test_the_request_carries_headers_and_fields_in_anthropics_spelling(
    provider_server, http_client, wires, api_key
):
    provider_server.handler = answering(wires["anthropic"].success_body)

    await adapter_for(provider_server, http_client, api_key).complete(REQUEST)

    [received] = provider_server.requests
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == api_key
    assert received.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in received.headers
    assert received.json() == {
        "model": "claude-sonnet-4-0",
        "max_tokens": DEFAULT_MAX_TOKENS,  # Anthropic requires it
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 1.0,  # Anthropic's hottest
        "stop_sequences": ["END", "STOP"],
    }


async def test_json_mode_prefills_the_answer_with_a_brace_and_keeps_it_in_the_text(
    provider_server, http_client, wires, api_key
):
    body = wires["anthropic"].success_body | {
        "content": [{"type": "text", "text": '"greeting": "hi"}'}]
    }
    provider_server.handler = answering(body)
    request = CompletionRequest(messages=(ChatMessage(Role.USER, "Hi"),), json_mode=True)

    response = await adapter_for(provider_server, http_client, api_key).complete(request)

    assert response.text == '{"greeting": "hi"}'
    assert provider_server.requests[0].json()["messages"][-1] == {
        "role": "assistant",
        "content": "{",
    }


async def test_a_streamed_json_answer_starts_with_the_prefilled_brace(
    provider_server, http_client, wires, api_key
):
    wire = wires["anthropic"]

    async def stream(request, reply):
        await reply.start(200, "text/event-stream")
        await reply.write(wire.preamble + wire.delta('"a": 1}') + wire.ending)
        await reply.finish()

    provider_server.handler = stream
    request = CompletionRequest(messages=(ChatMessage(Role.USER, "Hi"),), json_mode=True)

    events = [e async for e in adapter_for(provider_server, http_client, api_key).stream(request)]

    assert events[:2] == [TextDelta("{"), TextDelta('"a": 1}')]
    assert isinstance(events[-1], CompletionResponse)
    assert events[-1].text == '{"a": 1}'


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("tool_use", FinishReason.OTHER),
    ],
)
async def test_stop_reasons_are_normalised(provider_server, adapter, wires, stop_reason, expected):
    provider_server.handler = answering(
        wires["anthropic"].success_body | {"stop_reason": stop_reason}
    )

    response = await adapter.complete(REQUEST)

    assert response.finish_reason is expected
    assert response.provider_finish_reason == stop_reason


@pytest.mark.parametrize(
    "case",
    [
        ("overloaded_error", ProviderUnavailableError, True),
        ("api_error", ProviderUnavailableError, True),
        ("rate_limit_error", ProviderRateLimitedError, True),
        ("invalid_request_error", ProviderRejectedRequestError, False),
    ],
)
async def test_an_error_event_mid_stream_is_classified_by_its_type(
    provider_server, adapter, wires, sse_event, case
):
    error_type, expected_class, retryable = case
    wire = wires["anthropic"]

    async def stream(request, reply):
        await reply.start(200, "text/event-stream")
        error = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
        await reply.write(wire.preamble + wire.delta("Hel") + sse_event(error, event="error"))
        await reply.finish()

    provider_server.handler = stream

    with pytest.raises(expected_class) as caught:
        _ = [event async for event in adapter.stream(REQUEST)]

    assert is_retryable(caught.value) is retryable


async def test_an_overloaded_error_event_is_a_server_error(
    provider_server, http_client, wires, api_key, sse_event
):
    async def stream(request, reply):
        await reply.start(200, "text/event-stream")
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        await reply.write(sse_event(error, event="error"))
        await reply.finish()

    provider_server.handler = stream
    adapter = adapter_for(provider_server, http_client, api_key)

    with pytest.raises(ProviderUnavailableError) as caught:
        _ = [event async for event in adapter.stream(REQUEST)]

    assert caught.value.kind is FailureKind.SERVER_ERROR
    assert caught.value.upstream_http_status == 529


def test_an_empty_key_is_refused(http_client):
    with pytest.raises(ValueError, match="api_key"):
        AnthropicAdapter(http_client, model="claude-sonnet-4-0", api_key="")
