"""A local model provider for the llm gateway benchmark, in a process of its own.

Usage: python -P bench/_llm_mock.py

It listens on a free port of 127.0.0.1, prints one JSON line `{"port": N}`, and serves until
its standard input closes or it gets SIGTERM. It speaks HTTP/1.1 with keep-alive (and
pipelining, chunked request bodies) on asyncio's protocol layer, with answers prepared
ahead, so a request costs it a few tens of microseconds and it is never what a gateway
waits for:

- `POST /v1/chat/completions`: OpenAI's chat completions wire format; a fixed answer with
  usage, or with `"stream": true` server-sent `chat.completion.chunk` events ending in
  `data: [DONE]` (usage in the last chunk). A model whose name starts with `unavailable`
  gets `503` with OpenAI's error body: the "primary answers 503" deployment.
- `GET /api/tags` and `POST /api/generate`: the two Ollama calls netrun-llm's Ollama
  adapter makes.
- `GET /bench/requests`: how many chat or generate requests each model name got, so the
  benchmark can tell how often a gateway still calls a failing deployment.

It imports only the standard library: the benchmark starts it with the workspace's
interpreter, and `-P` keeps `bench/` (whose `logging.py` would shadow the standard
library's) off `sys.path`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
from typing import Final

ANSWER_TEXT: Final = "The quick brown fox jumps over the lazy dog."
STREAM_PIECES: Final = ("The quick ", "brown fox ", "jumps over ", "the lazy dog.")
PROMPT_TOKENS: Final = 12
COMPLETION_TOKENS: Final = 10
UNAVAILABLE_PREFIX: Final = "unavailable"
OLLAMA_MODEL: Final = "bench-model"

_MAX_HEAD_BYTES: Final = 64 * 1024


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode()
        + b"\r\nconnection: keep-alive\r\n\r\n" + body
    )  # fmt: skip


def _json(status: str, document: object) -> bytes:
    return _response(status, b"application/json", json.dumps(document).encode())


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def _completion_body(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER_TEXT},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
        }
    ).encode()


def _stream_body(model: str) -> bytes:
    """The whole SSE stream as one chunked-encoding body (one HTTP chunk per event)."""

    def chunk(choices: list[object], **extra: object) -> dict[str, object]:
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": choices,
            **extra,
        }

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    events += [chunk([{"index": 0, "delta": {"content": piece}}]) for piece in STREAM_PIECES]
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(chunk([], usage=_usage()))
    lines = [f"data: {json.dumps(event)}\n\n".encode() for event in events]
    lines.append(b"data: [DONE]\n\n")
    body = b"".join(f"{len(line):x}\r\n".encode() + line + b"\r\n" for line in lines)
    return body + b"0\r\n\r\n"


class Answers:
    """Every answer the mock gives, encoded once per model name; requests counted."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self._completions: dict[str, bytes] = {}
        self._streams: dict[str, bytes] = {}
        self.unavailable = _json(
            "503 Service Unavailable",
            {
                "error": {
                    "message": "The model is overloaded (the benchmark's failing deployment).",
                    "type": "server_error",
                    "code": "service_unavailable",
                }
            },
        )
        self.not_found = _json("404 Not Found", {"error": {"message": "no such path"}})
        self.bad_request = _json("400 Bad Request", {"error": {"message": "malformed request"}})
        self.tags = _json("200 OK", {"models": [{"name": f"{OLLAMA_MODEL}:latest"}]})

    def completion(self, model: str, *, stream: bool) -> bytes:
        """The answer to a chat completion request for `model`."""
        self.requests[model] += 1
        if model.startswith(UNAVAILABLE_PREFIX):
            return self.unavailable
        if stream:
            answer = self._streams.get(model)
            if answer is None:
                answer = self._streams[model] = (
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
                    + _stream_body(model)
                )
            return answer
        answer = self._completions.get(model)
        if answer is None:
            answer = self._completions[model] = _response(
                "200 OK", b"application/json", _completion_body(model)
            )
        return answer

    def generate(self, model: str) -> bytes:
        """The answer to an Ollama generate request (never cached: it is rare)."""
        self.requests[model] += 1
        return _json(
            "200 OK",
            {"model": model, "response": ANSWER_TEXT, "done": True, "eval_count": 10},
        )

    def counts(self) -> bytes:
        """The request counts by model name, as JSON."""
        return _json("200 OK", dict(self.requests))


class _Connection(asyncio.Protocol):
    """One client connection: parse requests from the buffer, answer them in order."""

    def __init__(self, answers: Answers) -> None:
        self._answers = answers
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None and self._answer_one():
            pass

    def _answer_one(self) -> bool:
        """Answer the first complete request in the buffer; False when there is none."""
        end_of_head = self._buffer.find(b"\r\n\r\n")
        if end_of_head < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES:
                self._close(self._answers.bad_request)
            return False
        head = bytes(self._buffer[:end_of_head]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) != 3:
            self._close(self._answers.bad_request)
            return False
        method, target = parts[0], parts[1]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body_start = end_of_head + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            decoded = self._chunked_body(body_start)
            if decoded is None:
                return False
            body, consumed = decoded
        else:
            length = int(headers.get("content-length") or 0)
            if len(self._buffer) < body_start + length:
                return False
            body = bytes(self._buffer[body_start : body_start + length])
            consumed = body_start + length
        del self._buffer[:consumed]
        answer = self._route(method, target.partition("?")[0], body)
        assert self._transport is not None
        if headers.get("connection", "").lower() == "close":
            self._close(answer)
            return False
        self._transport.write(answer)
        return True

    def _chunked_body(self, start: int) -> tuple[bytes, int] | None:
        """(body, bytes consumed from the buffer) once the whole chunked body is there."""
        body = bytearray()
        position = start
        while True:
            line_end = self._buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(self._buffer[position:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = self._buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                return bytes(body), trailer_end + 4
            chunk_start = line_end + 2
            if len(self._buffer) < chunk_start + size + 2:
                return None
            body += self._buffer[chunk_start : chunk_start + size]
            position = chunk_start + size + 2

    def _route(self, method: str, path: str, body: bytes) -> bytes:
        answers = self._answers
        if method == "POST" and path.endswith("/chat/completions"):
            request = _json_object(body)
            if request is None:
                return answers.bad_request
            return answers.completion(
                str(request.get("model", "")), stream=bool(request.get("stream"))
            )
        if method == "POST" and path == "/api/generate":
            request = _json_object(body)
            return (
                answers.bad_request
                if request is None
                else answers.generate(str(request.get("model", "")))
            )
        if method == "GET" and path == "/api/tags":
            return answers.tags
        if method == "GET" and path == "/bench/requests":
            return answers.counts()
        return answers.not_found

    def _close(self, answer: bytes) -> None:
        if self._transport is not None:
            self._transport.write(answer)
            self._transport.close()
            self._transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    answers = Answers()
    server = await loop.create_server(
        lambda: _Connection(answers), "127.0.0.1", 0, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # The parent closing our standard input (or dying) stops us too.
    loop.add_reader(
        sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1() else None
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_serve())
