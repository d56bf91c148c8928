"""The load generator's HTTP client: the cheapest honest HTTP/1.1 client asyncio allows.

httpx costs this machine about a millisecond of CPU per call, and its connection pool
slows down as connections multiply, so with it the load generator, not the server, set
the pace of the direct rows at concurrency 16 and 64 (a whole core busy at a few hundred
calls per second). This client keeps one keep-alive connection per worker of the load
generator, sends the same prepared request every time and reads the answer by its
`content-length` (or its chunks), so a call costs it a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit


class KeepAliveClient:
    """POSTs one prepared JSON body to one URL; one connection per worker number."""

    def __init__(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"{url!r} is not http://HOST:PORT/PATH")
        self._host, self._port = parts.hostname, parts.port
        head = [
            f"POST {parts.path} HTTP/1.1",
            f"host: {parts.hostname}:{parts.port}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self._request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        self._connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def post(self, worker: int) -> tuple[int, bytes]:
        """(status, body) of the prepared request, sent on `worker`'s connection."""
        connection = self._connections.pop(worker, None)
        if connection is None:
            connection = await asyncio.open_connection(self._host, self._port)
        reader, writer = connection
        writer.write(self._request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            body = await _read_chunks(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            writer.close()
        else:
            # Put back only after a whole answer: a failed call drops its connection.
            self._connections[worker] = connection
        return status, body

    async def aclose(self) -> None:
        """Close every connection."""
        connections, self._connections = self._connections, {}
        for _, writer in connections.values():
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are sent; this ends the body
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
