"""The local Key Vault as the config benchmarks use it: without its Nagle stall, optionally
behind a proxy that adds a network's latency, and read by the Key Vault SDK's aio client
as a team would set it up.

The stall: the local vault's request handler (`mainmast_config._local_key_vault`) writes a
response's head and its body in two `send` calls on a socket that keeps Nagle's algorithm
on, so the body waits until the client acknowledges the head, and a client delays that
acknowledgement by up to 40 ms. Every request over a kept-alive connection then takes
about 45 ms (measured here: 44 ms a read through the SDK, 1.3 ms with the algorithm off),
which is the local server's doing, not the SDK's, nor what a real vault does.
`local_vault()` turns it off with the handler's own switch (`disable_nagle_algorithm`,
from the standard library's `StreamRequestHandler`) before the vault starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from types import TracebackType
from typing import Any, Final, Self

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets.aio import SecretClient

from mainmast_config import _local_key_vault
from mainmast_config._local_key_vault import LocalKeyVault
from mainmast_config._testing import VaultCredential

SDK_CONNECTION_TIMEOUT_SECONDS: Final = 3.0
SDK_READ_TIMEOUT_SECONDS: Final = 10.0
FAR_VAULT_ONE_WAY_SECONDS: Final = 0.010
"""The latency the proxy adds each way: a 20 ms round trip, a vault in a nearby region."""
_CHUNK_BYTES: Final = 65_536


def local_vault() -> LocalKeyVault:
    """A local vault (not started) whose answers leave at once; see the module docstring."""
    _local_key_vault._Handler.disable_nagle_algorithm = True
    return LocalKeyVault()


class LatencyProxy:
    """A TCP forwarder on 127.0.0.1 to a local port that holds every chunk of data for
    `one_way_seconds` before passing it on, in each direction: what it forwards is as far
    away as a server across a network (TLS passes through untouched; the certificate is
    the vault's own, valid for 127.0.0.1 on any port). Runs its own event loop in a thread.
    """

    def __init__(self, upstream_port: int, one_way_seconds: float) -> None:
        self._upstream_port = upstream_port
        self._delay = one_way_seconds
        self._port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """`https://127.0.0.1:<port>`: the vault's URL through the proxy."""
        return f"https://127.0.0.1:{self._port}"

    def __enter__(self) -> Self:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="latency-proxy", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the latency proxy did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self._port = int(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await self._stop.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._upstream_port
            )
        except OSError:
            writer.close()  # the vault is down: so is the way to it
            return
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(_CHUNK_BYTES):
                await asyncio.sleep(self._delay)
                sink.write(data)
                await sink.drain()
        sink.close()


def sdk_client(
    vault_url: str, ca_path: str, *, tls_context_per_request: bool = False
) -> SecretClient:
    """The Key Vault SDK's aio client on the local vault, as a team would set it up, with
    the service's timeouts (so a vault that is down fails fast) and no retry backoff.

    The vault's certificate authority is trusted through one `ssl.SSLContext`, made here
    and given to the aiohttp connector of the session the client's transport uses, with
    the session options the transport would choose itself. Given the CA file path as
    `connection_verify` instead (`tls_context_per_request`), the transport builds a new
    context for every request, and since aiohttp pools connections per context, every
    request also opens a new TLS connection.
    """
    common: dict[str, Any] = {"verify_challenge_resource": False, "retry_backoff_factor": 0.0}
    if tls_context_per_request:
        return SecretClient(
            vault_url,
            VaultCredential(),
            connection_verify=ca_path,
            connection_timeout=SDK_CONNECTION_TIMEOUT_SECONDS,
            read_timeout=SDK_READ_TIMEOUT_SECONDS,
            **common,
        )
    context = ssl.create_default_context(cafile=ca_path)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    transport = AioHttpTransport(
        session=session,
        connection_timeout=SDK_CONNECTION_TIMEOUT_SECONDS,
        read_timeout=SDK_READ_TIMEOUT_SECONDS,
    )
    return SecretClient(vault_url, VaultCredential(), transport=transport, **common)
