"""OpenAI chat completions and Azure OpenAI: what goes on the wire, and what comes back."""

from __future__ import annotations

import httpx
import pytest

from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    ProviderKind,
    Role,
    TextDelta,
)
from mainmast_llm._openai import AZURE_API_VERSION, AzureOpenAIAdapter, OpenAIAdapter
from mainmast_llm._provider_errors import FailureKind, ProviderUnavailableError

FULL_REQUEST = CompletionRequest(
    messages=(
        ChatMessage(Role.USER, "Hi"),
        ChatMessage(Role.ASSISTANT, "Hello!"),
        ChatMessage(Role.USER, "A JSON greeting, please"),
    ),
    system="You are terse.",
    temperature=0.3,
    max_tokens=64,
    stop=("END",),
    json_mode=True,
)


def answering(body):
    async def handle(request, reply):
        await reply.send(200, body)

    return handle


async def test_the_request_carries_every_field_in_openais_spelling(
    provider_server, http_client, wires, api_key
):
    provider_server.handler = answering(wires["openai"].success_body)
    adapter = OpenAIAdapter(
        http_client, model="gpt-4o", api_key=api_key, base_url=provider_server.url + "/v1/"
    )

    await adapter.complete(FULL_REQUEST)

    [received] = provider_server.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == f"Bearer {api_key}"
    assert received.headers["content-type"] == "application/json"
    assert received.json() == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "A JSON greeting, please"},
        ],
        "temperature": 0.3,
        "max_tokens": 64,
        "stop": ["END"],
        "response_format": {"type": "json_object"},
    }


async def test_a_stream_asks_for_usage_in_its_last_chunk(provider_server, http_client, wires):
    wire = wires["openai"]

    async def stream(request, reply):
        await reply.start(200, "text/event-stream")
        await reply.write(wire.delta("Hi") + wire.ending)
        await reply.finish()

    provider_server.handler = stream
    adapter = OpenAIAdapter(http_client, model="gpt-4o", base_url=provider_server.url)

    events = [event async for event in adapter.stream(FULL_REQUEST)]

    body = provider_server.requests[0].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "authorization" not in provider_server.requests[0].headers  # no key, no header
    assert events[0] == TextDelta("Hi")
    assert isinstance(events[-1], CompletionResponse)
    assert events[-1].completion_tokens == 2


@pytest.mark.parametrize(
    ("provider_reason", "expected"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("content_filter", FinishReason.CONTENT_FILTER),
        ("tool_calls", FinishReason.OTHER),
    ],
)
async def test_finish_reasons_are_normalised(
    provider_server, http_client, wires, provider_reason, expected
):
    body = wires["openai"].success_body
    body = body | {"choices": [body["choices"][0] | {"finish_reason": provider_reason}]}
    provider_server.handler = answering(body)
    adapter = OpenAIAdapter(http_client, model="gpt-4o", base_url=provider_server.url)

    response = await adapter.complete(FULL_REQUEST)

    assert response.finish_reason is expected
    assert response.provider_finish_reason == provider_reason


async def test_an_answer_without_choices_is_malformed(provider_server, http_client):
    provider_server.handler = answering({"id": "x", "choices": []})
    adapter = OpenAIAdapter(http_client, model="gpt-4o", base_url=provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(FULL_REQUEST)

    assert caught.value.kind is FailureKind.MALFORMED_RESPONSE


async def test_an_error_inside_the_stream_is_a_retryable_server_error(
    provider_server, http_client, wires, sse_event
):
    wire = wires["openai"]

    async def stream(request, reply):
        await reply.start(200, "text/event-stream")
        await reply.write(wire.delta("Hi") + sse_event({"error": {"message": "overloaded"}}))
        await reply.finish()

    provider_server.handler = stream
    adapter = OpenAIAdapter(http_client, model="gpt-4o", base_url=provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        _ = [event async for event in adapter.stream(FULL_REQUEST)]

    assert caught.value.kind is FailureKind.SERVER_ERROR
    assert "overloaded" in caught.value.message


async def test_a_placeholder_key_for_a_compatible_server_is_sent_as_is(
    provider_server, http_client, wires
):
    provider_server.handler = answering(wires["openai"].success_body)
    adapter = OpenAIAdapter(
        http_client, model="served-model", api_key="EMPTY", base_url=provider_server.url
    )

    await adapter.complete(FULL_REQUEST)

    assert provider_server.requests[0].headers["authorization"] == "Bearer EMPTY"


async def test_azure_calls_the_deployment_url_with_api_version_and_api_key(
    provider_server, http_client, wires, api_key
):
    provider_server.handler = answering(wires["azure_openai"].success_body)
    adapter = AzureOpenAIAdapter(
        http_client, endpoint=provider_server.url + "/", deployment="chat-prod", api_key=api_key
    )

    response = await adapter.complete(FULL_REQUEST)

    [received] = provider_server.requests
    assert received.path == "/openai/deployments/chat-prod/chat/completions"
    assert received.query == f"api-version={AZURE_API_VERSION}"
    assert received.headers["api-key"] == api_key
    assert "authorization" not in received.headers
    assert "model" not in received.json()  # the deployment names the model
    assert response.provider is ProviderKind.AZURE_OPENAI
    assert adapter.model == "chat-prod"


async def test_azure_with_a_token_provider_sends_a_fresh_bearer_token_per_call(
    provider_server, http_client, wires
):
    provider_server.handler = answering(wires["azure_openai"].success_body)
    tokens = iter(["token-one", "token-two"])

    async def token_provider() -> str:
        return next(tokens)

    adapter = AzureOpenAIAdapter(
        http_client,
        endpoint=provider_server.url,
        deployment="chat-prod",
        token_provider=token_provider,
        api_version="2025-01-01-preview",
    )

    await adapter.complete(FULL_REQUEST)
    await adapter.complete(FULL_REQUEST)

    first, second = provider_server.requests
    assert first.headers["authorization"] == "Bearer token-one"
    assert second.headers["authorization"] == "Bearer token-two"
    assert "api-key" not in first.headers
    assert first.query == "api-version=2025-01-01-preview"


@pytest.mark.parametrize("credentials", [{}, {"api_key": "k", "token_provider": object()}])
def test_azure_needs_exactly_one_kind_of_credentials(credentials):
    with pytest.raises(ValueError, match="exactly one"):
        AzureOpenAIAdapter(
            httpx.AsyncClient(),
            endpoint="https://x.openai.azure.com",
            deployment="d",
            **credentials,
        )
