"""What every SDK client of one gRPC service shares: its channel, its token, its calls.

A client opens one channel in `connect()` (or `async with`), inside the event loop that
uses it, and can connect again after `close()`. Each call carries the bearer token, a
string or an async provider asked before every call, and deadline; a grpc error comes
out as the mainmast error it stands for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast._grpc_channel import open_channel
from mainmast.errors import UnauthenticatedError, translate_rpc_errors

TokenProvider = Callable[[], Awaitable[str]]
"""An async callable that returns a current access token (refreshing it when it must)."""

BearerToken = str | TokenProvider
"""An access token, or an async callable that returns the one to use now."""


class GrpcClientConfig(Protocol):
    """The settings every client's frozen config dataclass has."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def target(self) -> str: ...
    @property
    def call_timeout_seconds(self) -> float: ...
    @property
    def channel_credentials(self) -> grpc.ChannelCredentials | None: ...
    @property
    def channel_options(self) -> tuple[tuple[str, str | int], ...]: ...


_Config = TypeVar("_Config", bound=GrpcClientConfig)
_Stub = TypeVar("_Stub")
_Request = TypeVar("_Request", bound=Message)
_Response = TypeVar("_Response", bound=Message)


def check_client_config(config: GrpcClientConfig, service: str, *positive: str) -> None:
    """Refuse, with a ValueError naming the field, an empty target or a setting in
    `positive` that is not above zero; for a config's `__post_init__`."""
    if not config.target:
        raise ValueError(f"target is the {service} service's address, HOST:PORT")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} is positive")


async def bearer_metadata(token: BearerToken | None) -> tuple[tuple[str, str], ...] | None:
    """`authorization: Bearer <token>` for one call; None sends no token.

    A provider is asked now, and what it raises propagates. An empty token is refused
    without a call, with the error a service answers for missing credentials.
    """
    if token is None:
        return None
    if not isinstance(token, str):
        token = await token()
    if not token:
        raise UnauthenticatedError(
            "A bearer access token is needed for this call.",
            reason=AuthErrorReason.CREDENTIALS_MISSING.value,
            domain=AUTH_ERROR_DOMAIN,
        )
    return (("authorization", f"Bearer {token}"),)


class GrpcClient(Generic[_Config, _Stub]):
    """The base of a client of one gRPC service: connection, calls and their errors.

    `config` is the client's settings, with `target` replacing its own when given;
    `new_stub` makes the service's stub on the channel; `bearer_token` goes with every
    call that names no token of its own (None: no token).
    """

    def __init__(
        self,
        config: _Config,
        target: str | None,
        *,
        new_stub: Callable[[grpc.aio.Channel], _Stub],
        bearer_token: BearerToken | None = None,
    ) -> None:
        self._config = config if target is None else dataclasses.replace(config, target=target)
        self._new_stub = new_stub
        self._bearer_token = bearer_token
        self._channel: grpc.aio.Channel | None = None
        self._stub: _Stub | None = None

    @property
    def config(self) -> _Config:
        """The client's settings."""
        return self._config

    async def connect(self) -> None:
        """Open the channel and make the client ready (see the class); connecting a
        connected client does nothing. Call it inside the event loop that will use the
        client. When it raises, nothing stays open."""
        if self._channel is not None:
            return
        config = self._config
        channel = open_channel(
            config.target, credentials=config.channel_credentials, options=config.channel_options
        )
        self._channel = channel
        self._stub = self._new_stub(channel)
        try:
            await self._ready(channel)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled); the client can connect again."""
        channel, self._channel = self._channel, None
        self._stub = None
        if channel is not None:
            await channel.close(None)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self._config.target!r})"

    async def _ready(self, channel: grpc.aio.Channel) -> None:
        """What `connect()` waits for once the channel is open: nothing, unless a client
        says otherwise (the channel itself connects on the first call)."""

    def _not_connected(self) -> RuntimeError:
        return RuntimeError(
            f"the {type(self).__name__} is not connected: "
            "call `await connect()` or use `async with`"
        )

    def _connected_stub(self) -> _Stub:
        if self._stub is None:
            raise self._not_connected()
        return self._stub

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        bearer_token: BearerToken | None = None,
        *,
        deadline_seconds: float | None = None,
        wait_for_ready: bool | None = None,
    ) -> _Response:
        """One unary call with `bearer_token` (None: the client's), within
        `deadline_seconds` (None: `call_timeout_seconds`)."""
        metadata = await bearer_metadata(
            self._bearer_token if bearer_token is None else bearer_token
        )
        async with translate_rpc_errors():
            return await method(
                request,
                timeout=deadline_seconds or self._config.call_timeout_seconds,
                metadata=metadata,
                wait_for_ready=wait_for_ready,
            )

    @asynccontextmanager
    async def _stream(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[_Request, _Response],
        request: _Request,
        *,
        deadline_seconds: float | None,
    ) -> AsyncIterator[AsyncIterable[_Response]]:
        """A server-streaming call with the client's token, its responses to iterate
        inside the block; `deadline_seconds` None: the stream has no deadline.

        Leaving the block cancels the call: a no-op once the stream has ended; otherwise
        the service sees the cancellation and stops its work.
        """
        metadata = await bearer_metadata(self._bearer_token)
        call = method(request, timeout=deadline_seconds, metadata=metadata)
        try:
            async with translate_rpc_errors():
                yield call
        finally:
            call.cancel()
