"""Gemini's generateContent and streamGenerateContent: the wire and what comes back."""

from __future__ import annotations

import pytest

from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    FinishReason,
    Role,
)
from mainmast_llm._gemini import GeminiAdapter
from mainmast_llm._provider_errors import (
    FailureKind,
    ProviderRateLimitedError,
    ProviderUnavailableError,
)

REQUEST = CompletionRequest(
    messages=(
        ChatMessage(Role.USER, "Hi"),
        ChatMessage(Role.ASSISTANT, "Hello"),
        ChatMessage(Role.USER, "JSON please"),
    ),
    system="You are terse.",
    temperature=0.2,
    max_tokens=32,
    stop=("END",),
    json_mode=True,
)


def answering(body):
    async def handle(request, reply):
        await reply.send(200, body)

    return handle


def adapter_for(server, client, key):
    return GeminiAdapter(
        client, model="gemini-2.0-flash", api_key=key, base_url=server.url + "/v1beta"
    )


@pytest.fixture
def adapter(provider_server, http_client, api_key):
    """The adapter under test, pointed at the scripted server."""
    return adapter_for(provider_server, http_client, api_key)


async def test_the_request_uses_geminis_spelling_and_keeps_the_key_out_of_the_url(
    provider_server, http_client, wires, api_key
):
    provider_server.handler = answering(wires["gemini"].success_body)

    await adapter_for(provider_server, http_client, api_key).complete(REQUEST)

    [received] = provider_server.requests
    assert received.target == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert received.headers["x-goog-api-key"] == api_key
    assert received.json() == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "JSON please"}]},
        ],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "generationConfig": {
            "temperature": 0.2,
            "maxOutputTokens": 32,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
        },
    }


async def test_a_stream_asks_for_server_sent_events(provider_server, http_client, wires, api_key):
    wire = wires["gemini"]

    async def stream(request, reply):
        await reply.start(200, "text/event-stream")
        await reply.write(wire.delta("Hel") + wire.delta("lo") + wire.ending)
        await reply.finish()

    provider_server.handler = stream

    events = [e async for e in adapter_for(provider_server, http_client, api_key).stream(REQUEST)]

    assert provider_server.requests[0].target == (
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert events[-1].text == "Hello"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", FinishReason.STOP),
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("MALFORMED_FUNCTION_CALL", FinishReason.OTHER),
    ],
)
async def test_finish_reasons_are_normalised(provider_server, adapter, wires, reason, expected):
    body = wires["gemini"].success_body
    body = body | {"candidates": [body["candidates"][0] | {"finishReason": reason}]}
    provider_server.handler = answering(body)

    response = await adapter.complete(REQUEST)

    assert response.finish_reason is expected
    assert response.provider_finish_reason == reason


async def test_a_blocked_prompt_is_an_empty_content_filtered_answer(
    provider_server, http_client, api_key
):
    provider_server.handler = answering(
        {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
        }
    )

    response = await adapter_for(provider_server, http_client, api_key).complete(REQUEST)

    assert response.text == ""
    assert response.finish_reason is FinishReason.CONTENT_FILTER
    assert response.prompt_tokens == 4


async def test_an_answer_without_candidates_is_malformed(provider_server, http_client, api_key):
    provider_server.handler = answering({"modelVersion": "gemini-2.0-flash-001"})

    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter_for(provider_server, http_client, api_key).complete(REQUEST)

    assert caught.value.kind is FailureKind.MALFORMED_RESPONSE


async def test_an_error_inside_the_stream_is_classified_by_its_code(
    provider_server, http_client, wires, api_key, sse_event
):
    async def stream(request, reply):
        await reply.start(200, "text/event-stream")
        await reply.write(
            wires["gemini"].delta("Hel")
            + sse_event(
                {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
            )
        )
        await reply.finish()

    provider_server.handler = stream
    adapter = adapter_for(provider_server, http_client, api_key)

    with pytest.raises(ProviderRateLimitedError):
        _ = [event async for event in adapter.stream(REQUEST)]
