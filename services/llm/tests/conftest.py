"""Fixtures of the llm tests: a local HTTP/1.1 server that tests script to speak a provider's
wire format, the service's pooled provider client, the wire formats of the providers, and a
real auth service on 127.0.0.1 that issues the callers' tokens and the service accounts'
credentials.

The server is asyncio.start_server with a minimal HTTP/1.1 parser (over TLS if asked), so a
test controls every byte: the status, the headers, each chunk of a stream, a pause before
the first byte, a connection dropped halfway, and it sees when the client closes the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from mainmast.auth import AuthClient, AuthClientConfig
from mainmast.runtime import ServiceServer
from mainmast_auth.service import AuthService
from mainmast_auth.settings import AuthSettings
from mainmast_auth.testing import grant_platform_admin, seed_tenant
from mainmast_llm._adapter import ProviderAdapter
from mainmast_llm._anthropic import AnthropicAdapter
from mainmast_llm._gemini import GeminiAdapter
from mainmast_llm._http_client import provider_http_client
from mainmast_llm._ollama import OllamaAdapter
from mainmast_llm._openai import AzureOpenAIAdapter, OpenAIAdapter

API_KEY = "sk-test-4f9a1c7e2b8d3a6f5e0c9b1d"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server read it off the wire."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def json(self) -> Any:
        return orjson.loads(self.body)


class Reply:
    """The server side of one response: complete, streamed in chunks, or broken off."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_closed: asyncio.Event,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._client_closed = client_closed
        self.keep_alive = True

    async def send(
        self, status: int, body: bytes | dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        """A whole response with a Content-Length."""
        payload = orjson.dumps(body) if isinstance(body, dict) else body
        head = {"content-type": "application/json", **(headers or {})}
        head["content-length"] = str(len(payload))
        await self._write_head(status, head)
        self._writer.write(payload)
        await self._writer.drain()

    async def start(self, status: int, content_type: str) -> None:
        """The head of a chunked response; then `write` and `finish`."""
        await self._write_head(
            status, {"content-type": content_type, "transfer-encoding": "chunked"}
        )

    async def write(self, data: str | bytes) -> None:
        """One chunk of a chunked response."""
        raw = data.encode() if isinstance(data, str) else data
        self._writer.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        await self._writer.drain()

    async def write_raw(self, data: bytes) -> None:
        """Bytes as they are, HTTP or not."""
        self._writer.write(data)
        await self._writer.drain()

    async def finish(self) -> None:
        """The last chunk: the response is complete."""
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()

    async def drop(self) -> None:
        """Close the connection where the response stands, complete or not."""
        self.keep_alive = False
        self._writer.transport.abort()

    async def wait_for_client_close(self) -> None:
        """Return when the client closes the connection (reads anything it sends until EOF)."""
        self.keep_alive = False
        with contextlib.suppress(ConnectionError):
            while await self._reader.read(65536):
                pass
        self._client_closed.set()

    async def _write_head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} Scripted", *(f"{k}: {v}" for k, v in headers.items())]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()


Handler = Callable[[ReceivedRequest, Reply], Awaitable[None]]


@dataclass
class ProviderServer:
    """A scripted HTTP server on 127.0.0.1: set `handler`, read `requests`."""

    url: str = ""
    handler: Handler | None = None
    requests: list[ReceivedRequest] = field(default_factory=list)
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a client closed a connection a handler was waiting on."""
    connections: int = 0
    """Connections accepted so far."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while request := await _read_request(reader):
                self.requests.append(request)
                reply = Reply(reader, writer, self.client_closed)
                if self.handler is None:
                    await reply.send(404, {"error": {"message": "no handler"}})
                else:
                    await self.handler(request, reply)
                if not reply.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> ReceivedRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return ReceivedRequest(method=method, target=target, headers=headers, body=body)


@pytest.fixture
async def provider_server() -> AsyncIterator[ProviderServer]:
    """A scripted provider server, stopped with every connection it accepted."""
    async with serving_scripted() as scripted:
        yield scripted


@contextlib.asynccontextmanager
async def serving_scripted(
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[ProviderServer]:
    """A scripted provider server on 127.0.0.1 (over TLS with `tls`, a server context),
    stopped on exit with every connection it accepted."""
    scripted = ProviderServer()
    tasks: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await scripted.serve(reader, writer)
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scripted.url = f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
    try:
        yield scripted
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
def serve_scripted() -> Callable[..., contextlib.AbstractAsyncContextManager[ProviderServer]]:
    """`serving_scripted`, for a test that needs a server of its own (over TLS, say)."""
    return serving_scripted


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """The service's provider client, ignoring proxy settings of the environment (loopback
    only), so every adapter test runs over the transport the service runs on."""
    async with provider_http_client(trust_env=False) as client:
        yield client


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event: an optional `event:` line, a `data:` line, a blank line."""
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def ndjson(data: Any) -> str:
    """One line of newline-delimited JSON."""
    return orjson.dumps(data).decode() + "\n"


@dataclass(frozen=True)
class Wire:
    """One provider's wire format, as much as the shared adapter tests need.

    Every answer it describes says "Hello" with 3 prompt and 2 completion tokens.
    """

    name: str
    make: Callable[[httpx.AsyncClient, str], ProviderAdapter]
    path: str
    stream_path: str
    stream_content_type: str
    answered_model: str
    success_body: dict[str, Any]
    preamble: str
    """What a stream sends before its first text."""
    delta: Callable[[str], str]
    ending: str
    """What completes a stream after its text: finish reason, usage, end marker."""
    malformed: str
    """An event that no reader can make sense of."""
    error_body: Callable[[str], dict[str, Any]]
    secret: str | None


_GPT = "gpt-4o-2024-08-06"
_CLAUDE = "claude-sonnet-4-20250514"
_GEMINI = "gemini-2.0-flash-001"


def _openai_chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
    return sse(
        {"id": "c1", "object": "chat.completion.chunk", "model": _GPT, "choices": choices} | extra
    )


def _openai_like(
    name: str, make: Callable[[httpx.AsyncClient, str], ProviderAdapter], path: str
) -> Wire:
    return Wire(
        name=name,
        make=make,
        path=path,
        stream_path=path,
        stream_content_type="text/event-stream",
        answered_model=_GPT,
        success_body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": _GPT,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
        preamble=_openai_chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
        delta=lambda text: _openai_chunk([{"index": 0, "delta": {"content": text}}]),
        ending=_openai_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        + _openai_chunk([], usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
        + sse("[DONE]"),
        malformed=sse("{not json"),
        error_body=lambda message: {"error": {"message": message, "type": "invalid_request_error"}},
        secret=API_KEY,
    )


_ANTHROPIC_WIRE = Wire(
    name="anthropic",
    make=lambda client, url: AnthropicAdapter(
        client, model="claude-sonnet-4-0", api_key=API_KEY, base_url=url
    ),
    path="/v1/messages",
    stream_path="/v1/messages",
    stream_content_type="text/event-stream",
    answered_model=_CLAUDE,
    success_body={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": _CLAUDE,
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    },
    preamble=sse(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": _CLAUDE,
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        },
        event="message_start",
    )
    + sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        event="content_block_start",
    )
    + sse({"type": "ping"}, event="ping"),
    delta=lambda text: sse(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        event="content_block_delta",
    ),
    ending=sse({"type": "content_block_stop", "index": 0}, event="content_block_stop")
    + sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        event="message_delta",
    )
    + sse({"type": "message_stop"}, event="message_stop"),
    malformed="event: content_block_delta\ndata: {not json\n\n",
    error_body=lambda message: {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    },
    secret=API_KEY,
)


def _gemini_chunk(text: str, **extra: Any) -> str:
    return sse(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0} | extra
            ],
            "modelVersion": _GEMINI,
        }
    )


_GEMINI_USAGE = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}

_GEMINI_WIRE = Wire(
    name="gemini",
    make=lambda client, url: GeminiAdapter(
        client, model="gemini-2.0-flash", api_key=API_KEY, base_url=url + "/v1beta"
    ),
    path="/v1beta/models/gemini-2.0-flash:generateContent",
    stream_path="/v1beta/models/gemini-2.0-flash:streamGenerateContent",
    stream_content_type="text/event-stream",
    answered_model=_GEMINI,
    success_body={
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Hello"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": _GEMINI_USAGE,
        "modelVersion": _GEMINI,
    },
    preamble="",
    delta=_gemini_chunk,
    ending=sse(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": ""}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": _GEMINI_USAGE,
            "modelVersion": _GEMINI,
        }
    ),
    malformed=sse("{not json"),
    error_body=lambda message: {
        "error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
    },
    secret=API_KEY,
)


def _ollama_line(text: str, **extra: Any) -> str:
    return ndjson(
        {
            "model": "llama3.2",
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": False,
        }
        | extra
    )


_OLLAMA_WIRE = Wire(
    name="ollama",
    make=lambda client, url: OllamaAdapter(client, model="llama3.2", base_url=url),
    path="/api/chat",
    stream_path="/api/chat",
    stream_content_type="application/x-ndjson",
    answered_model="llama3.2",
    success_body={
        "model": "llama3.2",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "Hello"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 3,
        "eval_count": 2,
    },
    preamble="",
    delta=_ollama_line,
    ending=_ollama_line("", done=True, done_reason="stop", prompt_eval_count=3, eval_count=2),
    malformed="{not json\n",
    error_body=lambda message: {"error": message},
    secret=None,
)

WIRES = {
    "openai": _openai_like(
        "openai",
        lambda client, url: OpenAIAdapter(
            client, model="gpt-4o", api_key=API_KEY, base_url=url + "/v1"
        ),
        "/v1/chat/completions",
    ),
    "azure_openai": _openai_like(
        "azure_openai",
        lambda client, url: AzureOpenAIAdapter(
            client, endpoint=url, deployment="chat-prod", api_key=API_KEY
        ),
        "/openai/deployments/chat-prod/chat/completions",
    ),
    "anthropic": _ANTHROPIC_WIRE,
    "gemini": _GEMINI_WIRE,
    "ollama": _OLLAMA_WIRE,
}


@pytest.fixture(params=sorted(WIRES))
def wire(request: pytest.FixtureRequest) -> Wire:
    """Each HTTP provider's wire format in turn."""
    return WIRES[request.param]


@pytest.fixture
def wires() -> dict[str, Wire]:
    """Every HTTP provider's wire format by name, for provider-specific tests."""
    return WIRES


@pytest.fixture
def sse_event() -> Callable[..., str]:
    """`sse(data, event=None)`: one server-sent event as text."""
    return sse


@pytest.fixture
def ndjson_line() -> Callable[[Any], str]:
    """`ndjson(data)`: one line of newline-delimited JSON."""
    return ndjson


@pytest.fixture
def api_key() -> str:
    """The made-up key every adapter of the tests is given."""
    return API_KEY


@dataclass
class RunningAuth:
    """A real auth service on 127.0.0.1, and a client of it that logs users in."""

    service: AuthService
    target: str
    """Its address, for the llm service's `auth_target`."""
    client: AuthClient

    async def token(
        self, tenant: str, user: str, *, role: str = "member", platform_admin: bool = False
    ) -> str:
        """An access token of `user` of `tenant` holding `role`, created on first use."""
        await seed_tenant(self.service.database, tenant, user, password=PASSWORD, role=role)
        if platform_admin:
            await grant_platform_admin(self.service.database, f"{tenant}/users/{user}")
        # The service follows the policy store by polling; load the new lines now, so the
        # first decision about this user is made on them.
        await self.service.policy.refresh()
        return (await self.client.login(tenant, user, PASSWORD)).access_token

    async def service_account(self, tenant: str, name: str) -> tuple[str, str]:
        """The client id and client secret of a new service account `name` of `tenant`."""
        owner = await self.token(tenant, "accounts-owner", role="owner")
        created = await self.client.create_service_account(tenant, name, bearer_token=owner)
        return created.service_account.client_id, created.client_secret


@pytest.fixture
async def auth_server(tmp_path: Any) -> AsyncIterator[RunningAuth]:
    """An auth service on 127.0.0.1:0 with its own SQLite file, stopped after the test."""
    database = tmp_path / "auth.db"
    service = AuthService(
        AuthSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            database_url=SecretStr(f"sqlite+aiosqlite:///{database}"),
            signing_key_encryption_key_file=tmp_path / "sealing.key",
        )
    )
    async with ServiceServer(service) as server:
        target = f"127.0.0.1:{server.port}"
        async with AuthClient(config=AuthClientConfig(target=target)) as client:
            yield RunningAuth(service, target, client)
