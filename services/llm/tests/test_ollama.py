"""Ollama's /api/chat: the wire, NDJSON streams, and what comes back."""

from __future__ import annotations

import pytest

from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    FinishReason,
    ProviderKind,
    Role,
    TextDelta,
)
from mainmast_llm._ollama import OllamaAdapter
from mainmast_llm._provider_errors import FailureKind, ProviderUnavailableError

REQUEST = CompletionRequest(
    messages=(ChatMessage(Role.USER, "Hi"),),
    system="You are terse.",
    temperature=0.7,
    max_tokens=16,
    stop=("END",),
    json_mode=True,
)


def answering(body):
    async def handle(request, reply):
        await reply.send(200, body)

    return handle


async def test_the_request_uses_ollamas_spelling(provider_server, http_client, wires):
    provider_server.handler = answering(wires["ollama"].success_body)
    adapter = OllamaAdapter(http_client, model="llama3.2", base_url=provider_server.url)

    response = await adapter.complete(REQUEST)

    [received] = provider_server.requests
    assert received.path == "/api/chat"
    assert received.json() == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": False,
        "options": {"temperature": 0.7, "num_predict": 16, "stop": ["END"]},
        "format": "json",
    }
    assert response.provider is ProviderKind.OLLAMA


async def test_a_stream_reads_ndjson_lines_until_done(
    provider_server, http_client, wires, ndjson_line
):
    wire = wires["ollama"]

    async def stream(request, reply):
        await reply.start(200, "application/x-ndjson")
        # One line split across two chunks, and a line in the same chunk as another.
        line = wire.delta("Hel")
        await reply.write(line[:10])
        await reply.write(line[10:] + wire.delta("lo"))
        await reply.write(wire.ending)
        await reply.finish()

    provider_server.handler = stream
    adapter = OllamaAdapter(http_client, model="llama3.2", base_url=provider_server.url)

    events = [event async for event in adapter.stream(REQUEST)]

    assert provider_server.requests[0].json()["stream"] is True
    assert events[:2] == [TextDelta("Hel"), TextDelta("lo")]
    assert events[-1].text == "Hello"


async def test_done_reason_length_is_normalised(provider_server, http_client, wires):
    provider_server.handler = answering(wires["ollama"].success_body | {"done_reason": "length"})
    adapter = OllamaAdapter(http_client, model="llama3.2", base_url=provider_server.url)

    response = await adapter.complete(REQUEST)

    assert response.finish_reason is FinishReason.LENGTH


async def test_an_error_line_mid_stream_is_a_retryable_server_error(
    provider_server, http_client, wires, ndjson_line
):
    async def stream(request, reply):
        await reply.start(200, "application/x-ndjson")
        await reply.write(wires["ollama"].delta("Hel") + ndjson_line({"error": "model crashed"}))
        await reply.finish()

    provider_server.handler = stream
    adapter = OllamaAdapter(http_client, model="llama3.2", base_url=provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        _ = [event async for event in adapter.stream(REQUEST)]

    assert caught.value.kind is FailureKind.SERVER_ERROR
    assert "model crashed" in caught.value.message


async def test_an_answer_that_is_not_done_is_malformed(provider_server, http_client, wires):
    provider_server.handler = answering(wires["ollama"].success_body | {"done": False})
    adapter = OllamaAdapter(http_client, model="llama3.2", base_url=provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(REQUEST)

    assert caught.value.kind is FailureKind.MALFORMED_RESPONSE
