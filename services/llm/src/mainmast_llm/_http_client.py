"""The pooled HTTP client every provider adapter is given: httpx's API on aiohttp's pool.

The adapters speak `httpx.AsyncClient`; underneath, `AiohttpTransport` sends each request
through one `aiohttp.ClientSession`. httpx's own transport (httpcore) walks its whole pool
for every request and every response it releases, so its cost per call grows with the
connections open: it was most of the service's CPU time per call under load, two to six
times what the same call costs through aiohttp (the "LLM gateway" section of
bench/README.md has the figures).

The transport keeps what the adapters rely on (`_http_call` says what that is):

- a response whose body was not read to the end is closed, not pooled, so a cancelled
  call or an abandoned stream closes the provider's connection and it stops generating;
  a body read to the end returns its connection to the pool;
- httpx's connect, read and pool timeouts apply, as aiohttp's socket-connect, socket-read
  and connect timeouts (the last covers waiting for a pooled connection and connecting);
  there is no write timeout;
- aiohttp's failures become httpx's: a timeout its TimeoutException, a connection that
  could not be made (refused, no such host, a TLS handshake or certificate failure)
  ConnectError, and a connection lost or a response that is not HTTP another
  TransportError; nothing of aiohttp's reaches the adapters.

(httpx-aiohttp, which the openai SDK offers, has the same design, but in version 0.2.0 it
reports every aiohttp connection error, a refused connection among them, as
`httpx.ConnectTimeout`, and lets a response that is not HTTP through as aiohttp's own
error: the adapters would report a provider that refuses connections as timing out, and
one that answers garbage as an internal error.)

Proxies stay httpx's business: with `trust_env`, a request the proxy variables of the
environment send through a proxy (NO_PROXY honoured) goes over httpx's own transport to
that proxy, as it would from any httpx client; every other request comes here.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Final

import aiohttp
import httpx
from httpx._utils import get_environment_proxies

KEEPALIVE_SECONDS: Final = 5.0
"""How long an idle pooled connection is kept (httpx's own default)."""

# Checked in order: the first class an aiohttp failure is an instance of says what it is.
_FAILURES: Final[tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientError, httpx.TransportError),
)


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """Raise aiohttp's failures as the httpx TransportErrors that say the same."""
    try:
        yield
    except aiohttp.ClientError as exc:
        error_class = next(httpx_class for cls, httpx_class in _FAILURES if isinstance(exc, cls))
        # aiohttp's text for a response it could not read repeats the request's URL; the
        # message says only what went wrong, as httpx's own do.
        message = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
        raise error_class(message or type(exc).__name__, request=request) from exc


class _ResponseBody(httpx.AsyncByteStream):
    """The body of an aiohttp response, as httpx reads it."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()  # the rest is not wanted: the provider sees the close


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent through one aiohttp session (made on first use, on the running
    loop); see the module docstring.

    `max_connections` bounds the connections open at once (None: no bound);
    `keepalive_seconds` is how long an idle one is kept.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int | None = None,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    def _opened_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections or 0,  # aiohttp's 0 is "no limit"
                ssl=self._ssl_context,
                keepalive_timeout=self._keepalive_seconds,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # httpx already did all of this: cookies, decompression, its own headers.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; the response's body is read as httpx reads it."""
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()  # the adapters' JSON bodies are bytes already
        # aiohttp frames the body it is given; a framing header of httpx's would clash.
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() != "transfer-encoding"
        ]
        with _as_httpx_errors(request):
            response = await self._opened_session().request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,  # httpx follows redirects itself when asked to
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        # Optional in aiohttp's types; a response that arrived has its version (HTTP/1.x).
        version = "HTTP/1.1" if response.version is None else "HTTP/{}.{}".format(*response.version)
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseBody(response, request),
            request=request,
            extensions={
                "http_version": version.encode(),
                "reason_phrase": (response.reason or "").encode(),
            },
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()


def provider_http_client(
    *,
    trust_env: bool,
    verify: ssl.SSLContext | bool = True,
    max_connections: int | None = None,
) -> httpx.AsyncClient:
    """The pooled client of the provider adapters (its owner closes it).

    `trust_env`: the proxy and certificate variables of the environment apply.
    `verify`: True checks providers' certificates as httpx does (certifi's authorities, or
    those `SSL_CERT_FILE` names with `trust_env`); an SSLContext is used as it is.
    `max_connections` bounds the connections open at once (None: no bound). The client
    has no timeouts: each adapter bounds its call by the deployment's timeout and the
    call's deadline.
    """
    ssl_context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
    # httpx reads the proxy variables only for a client without a transport of its own, so
    # this one is given httpx's reading of them: a proxy transport for each URL pattern a
    # proxy serves, None (this client's transport) for each one NO_PROXY exempts.
    proxies = get_environment_proxies() if trust_env else {}
    proxy_limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=256)
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        pattern: None
        if proxy is None
        else httpx.AsyncHTTPTransport(
            proxy=proxy, verify=ssl_context, trust_env=trust_env, limits=proxy_limits
        )
        for pattern, proxy in proxies.items()
    }
    return httpx.AsyncClient(
        transport=AiohttpTransport(ssl_context=ssl_context, max_connections=max_connections),
        mounts=mounts,
        timeout=httpx.Timeout(None),
        trust_env=trust_env,
    )
