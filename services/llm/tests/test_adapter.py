"""Every HTTP adapter against a local server speaking its provider's wire format: success,
streaming, malformed and truncated streams, throttling, failures, slow first bytes, dropped
connections and cancellation are handled alike."""

from __future__ import annotations

import asyncio
import io
import socket
from datetime import timedelta

import httpx
import orjson
import pytest

from mainmast.logging import configure_logging, get_logger, reset_logging
from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    Role,
    StreamEvent,
    TextDelta,
)
from mainmast_llm._http_call import deadline_after
from mainmast_llm._provider_errors import (
    FailureKind,
    ProviderAuthenticationError,
    ProviderRateLimitedError,
    ProviderRejectedRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    is_retryable,
)

REQUEST = CompletionRequest(messages=(ChatMessage(Role.USER, "Say hello"),))


def streaming_handler(wire, *pieces: str, then=None):
    """A handler that streams `pieces` in the wire's framing, then runs `then` (or ends)."""

    async def handle(request, reply):
        await reply.start(200, wire.stream_content_type)
        await reply.write(wire.preamble + "".join(wire.delta(piece) for piece in pieces))
        if then is None:
            await reply.write(wire.ending)
            await reply.finish()
        else:
            await then(reply)

    return handle


def answering(status, body, headers=None):
    async def handle(request, reply):
        await reply.send(status, body, headers)

    return handle


async def collect(events, into: list[StreamEvent] | None = None) -> list[StreamEvent]:
    """The events of a stream; each is in `into` as soon as it arrives, even if one fails."""
    received = [] if into is None else into
    async for event in events:
        received.append(event)
    return received


async def test_complete_normalises_the_providers_answer(wire, provider_server, http_client):
    provider_server.handler = answering(200, wire.success_body)
    adapter = wire.make(http_client, provider_server.url)

    response = await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert response.text == "Hello"
    assert response.finish_reason is FinishReason.STOP
    assert (response.prompt_tokens, response.completion_tokens) == (3, 2)
    assert response.total_tokens == 5
    assert response.provider.value == wire.name
    assert response.model == wire.answered_model
    assert response.latency >= timedelta(0)
    [received] = provider_server.requests
    assert (received.method, received.path) == ("POST", wire.path)
    assert received.json()  # the body is JSON


async def test_stream_yields_deltas_then_the_whole_response(wire, provider_server, http_client):
    provider_server.handler = streaming_handler(wire, "Hel", "lo")
    adapter = wire.make(http_client, provider_server.url)

    events = await collect(adapter.stream(REQUEST, deadline=deadline_after(30)))

    assert events[:-1] == [TextDelta("Hel"), TextDelta("lo")]
    final = events[-1]
    assert isinstance(final, CompletionResponse)
    assert final.text == "Hello"
    assert final.finish_reason is FinishReason.STOP
    assert (final.prompt_tokens, final.completion_tokens) == (3, 2)
    assert final.model == wire.answered_model
    assert provider_server.requests[0].path == wire.stream_path


async def test_the_pooled_connection_is_reused_after_a_complete_stream(
    wire, provider_server, http_client
):
    provider_server.handler = streaming_handler(wire, "Hello")
    adapter = wire.make(http_client, provider_server.url)

    await collect(adapter.stream(REQUEST, deadline=deadline_after(30)))
    await collect(adapter.stream(REQUEST, deadline=deadline_after(30)))

    assert len(provider_server.requests) == 2
    assert provider_server.connections == 1


async def test_the_pooled_connection_is_reused_after_a_whole_answer(
    wire, provider_server, http_client
):
    provider_server.handler = answering(200, wire.success_body)
    adapter = wire.make(http_client, provider_server.url)

    await adapter.complete(REQUEST, deadline=deadline_after(30))
    await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert len(provider_server.requests) == 2
    assert provider_server.connections == 1


async def test_a_truncated_stream_is_a_retryable_malformed_response(
    wire, provider_server, http_client
):
    async def end_early(reply):
        await reply.finish()  # a clean end of the body, without the provider's end marker

    provider_server.handler = streaming_handler(wire, "Hel", then=end_early)
    adapter = wire.make(http_client, provider_server.url)
    received: list[StreamEvent] = []

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(adapter.stream(REQUEST, deadline=deadline_after(30)), into=received)

    assert received == [TextDelta("Hel")]
    assert caught.value.kind is FailureKind.MALFORMED_RESPONSE
    assert is_retryable(caught.value)


async def test_a_malformed_event_is_a_retryable_malformed_response(
    wire, provider_server, http_client
):
    async def garble(reply):
        await reply.write(wire.malformed)
        await reply.finish()

    provider_server.handler = streaming_handler(wire, "Hel", then=garble)
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(adapter.stream(REQUEST, deadline=deadline_after(30)))

    assert caught.value.kind is FailureKind.MALFORMED_RESPONSE
    assert caught.value.upstream_http_status == 200


async def test_a_body_that_is_not_json_is_a_malformed_response(wire, provider_server, http_client):
    provider_server.handler = answering(200, b"<html>gateway</html>")
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert caught.value.kind is FailureKind.MALFORMED_RESPONSE


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, timedelta(seconds=7)),
        ({"retry-after-ms": "1500", "retry-after": "2"}, timedelta(milliseconds=1500)),
        ({}, None),
    ],
)
async def test_429_is_rate_limited_with_the_providers_retry_after(
    wire, provider_server, http_client, headers, expected
):
    provider_server.handler = answering(429, wire.error_body("slow down"), headers)
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderRateLimitedError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert caught.value.retry_after == expected
    assert caught.value.kind is FailureKind.RATE_LIMITED
    assert caught.value.upstream_http_status == 429
    assert caught.value.reason == "PROVIDER_RATE_LIMITED"
    assert is_retryable(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_5xx_and_overloaded_are_retryable_server_errors(
    wire, provider_server, http_client, status
):
    provider_server.handler = answering(status, wire.error_body("try later"))
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(adapter.stream(REQUEST, deadline=deadline_after(30)))

    assert caught.value.kind is FailureKind.SERVER_ERROR
    assert caught.value.upstream_http_status == status
    assert caught.value.metadata["provider"] == wire.name
    assert is_retryable(caught.value)


async def test_400_is_a_validation_error_that_is_not_retried_and_hides_the_key(
    wire, provider_server, http_client, api_key
):
    # Some providers quote what they received; the adapter's key must not travel on in our
    # message (Ollama takes no key, so nothing is hidden from its message).
    provider_server.handler = answering(
        400, wire.error_body(f"max_tokens is too large for key {api_key}")
    )
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderRejectedRequestError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert "max_tokens is too large" in caught.value.message
    assert (api_key in caught.value.message) is (wire.secret is None)
    assert caught.value.reason == "PROVIDER_REJECTED_REQUEST"
    assert caught.value.metadata["upstream_http_status"] == "400"
    assert not is_retryable(caught.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_authentication_failures_that_are_not_retried(
    wire, provider_server, http_client, api_key, status
):
    provider_server.handler = answering(status, wire.error_body(f"Incorrect API key {api_key}"))
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderAuthenticationError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert api_key not in str(caught.value)
    assert api_key not in repr(adapter)
    assert not is_retryable(caught.value)


async def test_a_slow_first_byte_times_out_at_the_deadline_and_closes_the_request(
    wire, provider_server, http_client
):
    async def stall(request, reply):
        await reply.wait_for_client_close()

    provider_server.handler = stall
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderTimeoutError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(0.2))

    assert caught.value.reason == "PROVIDER_TIMEOUT"
    assert is_retryable(caught.value)
    await provider_server.client_closed.wait()


async def test_a_stream_that_stalls_midway_times_out_at_the_deadline(
    wire, provider_server, http_client
):
    provider_server.handler = streaming_handler(
        wire, "Hel", then=lambda reply: reply.wait_for_client_close()
    )
    adapter = wire.make(http_client, provider_server.url)
    received: list[StreamEvent] = []

    with pytest.raises(ProviderTimeoutError) as caught:
        await collect(adapter.stream(REQUEST, deadline=deadline_after(1.0)), into=received)

    assert received == [TextDelta("Hel")]
    assert caught.value.upstream_http_status == 200
    await provider_server.client_closed.wait()


async def test_a_connection_dropped_mid_stream_is_a_retryable_connection_failure(
    wire, provider_server, http_client
):
    provider_server.handler = streaming_handler(wire, "Hel", then=lambda reply: reply.drop())
    adapter = wire.make(http_client, provider_server.url)
    received: list[StreamEvent] = []

    with pytest.raises(ProviderUnavailableError) as caught:
        await collect(adapter.stream(REQUEST, deadline=deadline_after(30)), into=received)

    assert received == [TextDelta("Hel")]
    assert caught.value.kind is FailureKind.CONNECTION_FAILED
    assert is_retryable(caught.value)


async def test_a_refused_connection_is_a_retryable_connection_failure(wire, http_client):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    adapter = wire.make(http_client, f"http://127.0.0.1:{port}")

    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert caught.value.kind is FailureKind.CONNECTION_FAILED
    assert caught.value.upstream_http_status == 0


async def test_a_connection_closed_before_the_answer_is_a_retryable_connection_failure(
    wire, provider_server, http_client
):
    async def close_at_once(request, reply):
        await reply.drop()

    provider_server.handler = close_at_once
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert caught.value.kind is FailureKind.CONNECTION_FAILED
    assert is_retryable(caught.value)


async def test_an_answer_that_is_not_http_is_a_retryable_connection_failure(
    wire, provider_server, http_client
):
    async def not_http(request, reply):
        await reply.write_raw(b"SSH-2.0-banner\r\n\r\n")  # another protocol on the port
        await reply.drop()

    provider_server.handler = not_http
    adapter = wire.make(http_client, provider_server.url)

    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(REQUEST, deadline=deadline_after(30))

    assert caught.value.kind is FailureKind.CONNECTION_FAILED
    assert "banner" not in str(caught.value)


async def test_cancelling_a_stream_closes_the_upstream_connection(
    wire, provider_server, http_client
):
    provider_server.handler = streaming_handler(
        wire, "Hel", then=lambda reply: reply.wait_for_client_close()
    )
    adapter = wire.make(http_client, provider_server.url)
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for event in adapter.stream(REQUEST):
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    await first_delta.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    await provider_server.client_closed.wait()
    # The half-read connection went away rather than back to the pool.
    provider_server.handler = answering(200, wire.success_body)
    assert (await adapter.complete(REQUEST, deadline=deadline_after(30))).text == "Hello"
    assert provider_server.connections == 2


async def test_cancelling_a_call_waiting_for_headers_closes_the_upstream_connection(
    wire, provider_server, http_client
):
    request_arrived = asyncio.Event()

    async def stall(request, reply):
        request_arrived.set()
        await reply.wait_for_client_close()

    provider_server.handler = stall
    adapter = wire.make(http_client, provider_server.url)
    task = asyncio.create_task(adapter.complete(REQUEST))
    await request_arrived.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    await provider_server.client_closed.wait()


async def test_an_adapters_key_is_masked_in_log_lines(wires, http_client):
    keyed = [wire for wire in wires.values() if wire.secret is not None]
    output = io.StringIO()
    configure_logging(json=True, stream=output)
    try:
        for wire in keyed:
            adapter = wire.make(http_client, "http://127.0.0.1:9")
            get_logger("test").info("adapter.made", adapter=repr(adapter), leaked=wire.secret)
    finally:
        reset_logging()

    lines = output.getvalue().splitlines()
    assert len(lines) == len(keyed) == 4
    assert not any(wire.secret in line for wire in keyed for line in lines)


async def test_a_provider_call_writes_no_log_line_of_the_http_client(
    wire, provider_server, http_client
):
    provider_server.handler = answering(200, wire.success_body)
    adapter = wire.make(http_client, provider_server.url)
    output = io.StringIO()
    configure_logging(json=True, stream=output)
    try:
        await adapter.complete(REQUEST, deadline=deadline_after(30))
        get_logger("test").info("call.done")
    finally:
        reset_logging()

    # httpx logs every request at INFO; the service's logging holds it to WARNING.
    assert [orjson.loads(line)["event"] for line in output.getvalue().splitlines()] == ["call.done"]


def test_the_httpx_client_is_the_one_given(wire):
    client = httpx.AsyncClient()
    adapter = wire.make(client, "http://127.0.0.1:9")
    assert adapter._call.client is client  # one pooled client per adapter, never its own
