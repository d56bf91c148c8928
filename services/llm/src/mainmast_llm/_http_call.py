"""One provider HTTP call: deadline, cancellation and failure classification.

Every adapter sends through `open_response` and reads through `read_json_object` or a
`StreamedBody`, so a deadline, a cancelled task and a broken connection are handled once
for all of them:

- the deadline (absolute, on the event loop's clock) bounds the whole call, from
  connecting to the last byte of a stream, and becomes `ProviderTimeoutError`;
- a cancelled task, or a consumer that stops reading a stream, leaves the `async with`
  that holds the response, which closes it: the client's transport (`_http_client`)
  drops a connection whose response was not read to the end instead of returning it to
  the pool, so the provider sees the connection close and stops generating;
- transport errors become `ProviderUnavailableError` (connection) or
  `ProviderTimeoutError`, and a status other than 2xx goes to `error_for_http_status`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

from ._completion import ProviderKind
from ._provider_errors import (
    connection_error,
    error_for_http_status,
    malformed_response_error,
    timeout_error,
)
from ._sse import ServerSentEvent, iter_server_sent_events

# An error body is read only to explain the failure; more than this is not an explanation.
_MAX_ERROR_BODY_BYTES: Final = 64 * 1024
# What may follow a provider's end marker: blank lines, a trailing comment, the last chunk.
_MAX_DRAINED_LINES: Final = 8


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """Everything one call needs to know about where it goes."""

    client: httpx.AsyncClient
    """The pooled client the adapter was given."""
    provider: ProviderKind
    """Whose API this is, for the errors."""
    secrets: tuple[str, ...] = ()
    """Credentials that must never appear in an error message."""


def deadline_after(seconds: float | None) -> float | None:
    """The absolute deadline, on the running loop's clock, `seconds` from now (None: none).

    A gRPC servicer passes `context.time_remaining()`.
    """
    return None if seconds is None else asyncio.get_running_loop().time() + seconds


@asynccontextmanager
async def open_response(
    call: ProviderCall,
    url: str,
    *,
    headers: Mapping[str, str],
    json_body: Any,
    deadline: float | None,
) -> AsyncIterator[httpx.Response]:
    """POST `json_body` to `url` and yield the 2xx response, its body not yet read.

    Raises the classified provider error for any other status or a failed connection.
    """
    request = call.client.build_request(
        "POST", _parsed_url(url), headers=headers, content=orjson.dumps(json_body)
    )
    try:
        async with asyncio.timeout_at(deadline):
            response = await call.client.send(request, stream=True)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise timeout_error(call.provider) from exc
    except httpx.TransportError as exc:
        raise connection_error(call.provider) from exc
    try:
        if not response.is_success:
            body = await _read_error_body(call, response, deadline)
            raise error_for_http_status(
                call.provider,
                response.status_code,
                response.headers,
                body,
                secrets=call.secrets,
            )
        yield response
    finally:
        await response.aclose()


@functools.lru_cache(maxsize=1024)
def _parsed_url(url: str) -> httpx.URL:
    # Each adapter sends to one or two URLs; parsing one anew for every call was about a
    # tenth of the CPU time of a provider call. (An httpx.URL is immutable.)
    return httpx.URL(url)


async def _read_error_body(
    call: ProviderCall, response: httpx.Response, deadline: float | None
) -> bytes:
    body = bytearray()
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= _MAX_ERROR_BODY_BYTES:
                    break
    except (TimeoutError, httpx.TransportError):
        pass  # the status alone classifies the failure; its explanation is a bonus
    return bytes(body)


async def read_json_object(
    call: ProviderCall, response: httpx.Response, deadline: float | None
) -> dict[str, Any]:
    """The whole body of `response`, which must be a JSON object."""
    try:
        async with asyncio.timeout_at(deadline):
            body = await response.aread()
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise timeout_error(call.provider, upstream_http_status=response.status_code) from exc
    except httpx.TransportError as exc:
        raise connection_error(call.provider, upstream_http_status=response.status_code) from exc
    return parse_json_object(call, body, status=response.status_code)


def parse_json_object(call: ProviderCall, text: str | bytes, *, status: int) -> dict[str, Any]:
    """`text` parsed as a JSON object; a malformed-response error if it is not one."""
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise malformed_response_error(
            call.provider, "the body is not valid JSON", upstream_http_status=status
        ) from exc
    if not isinstance(payload, dict):
        raise malformed_response_error(
            call.provider, "the body is not a JSON object", upstream_http_status=status
        )
    return payload


class StreamedBody:
    """The body of a streamed response, read line by line within the deadline.

    One line reader serves the whole body, so after a reader stopped at the provider's
    end marker, `drain` can read what is left (the end of the chunked encoding) and the
    connection goes back to the pool instead of being closed.
    """

    def __init__(self, call: ProviderCall, response: httpx.Response, deadline: float | None):
        self._call = call
        self._response = response
        self._deadline = deadline
        self._lines = self._read_lines()

    @property
    def status(self) -> int:
        """The response's HTTP status."""
        return self._response.status_code

    def lines(self) -> AsyncIterator[str]:
        """The lines of the body (without terminators); the same iterator on every call."""
        return self._lines

    def events(self) -> AsyncIterator[ServerSentEvent]:
        """The server-sent events of the body, from where the lines stand."""
        return iter_server_sent_events(self._lines)

    async def drain(self) -> None:
        """Read the rest of a body whose content is complete, so the connection is reusable.

        A provider that keeps sending after its end marker is not waited for: after a few
        lines the connection is given up (closed) instead.
        """
        for _ in range(_MAX_DRAINED_LINES):
            if await anext(self._lines, None) is None:
                return

    async def _read_lines(self) -> AsyncGenerator[str, None]:
        lines = self._response.aiter_lines()
        status = self.status
        provider = self._call.provider
        while True:
            try:
                # The timeout wraps each read, never a `yield`: a timeout scope held open
                # across a yield would fire in whatever the consumer is doing meanwhile.
                async with asyncio.timeout_at(self._deadline):
                    line = await anext(lines)
            except StopAsyncIteration:
                return
            except (TimeoutError, httpx.TimeoutException) as exc:
                raise timeout_error(provider, upstream_http_status=status) from exc
            except httpx.TransportError as exc:
                raise connection_error(provider, upstream_http_status=status) from exc
            except UnicodeDecodeError as exc:
                raise malformed_response_error(
                    provider, "the stream is not valid UTF-8", upstream_http_status=status
                ) from exc
            yield line
