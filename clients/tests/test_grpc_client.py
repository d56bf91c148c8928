"""The base of the SDK's clients over a real health server on loopback: the bearer token
each call carries, what is refused before any call, and the connection's life cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mainmast._grpc_client import BearerToken, GrpcClient
from mainmast.auth import AUTH_ERROR_DOMAIN
from mainmast.errors import UnauthenticatedError, UnavailableError


@dataclass(frozen=True, slots=True)
class _Config:
    target: str = ""
    call_timeout_seconds: float = 5.0
    channel_credentials: grpc.ChannelCredentials | None = None
    channel_options: tuple[tuple[str, str | int], ...] = ()


class _HealthClient(GrpcClient[_Config, Any]):
    def __init__(self, target: str, *, bearer_token: BearerToken | None = None) -> None:
        super().__init__(
            _Config(), target, new_stub=health_pb2_grpc.HealthStub, bearer_token=bearer_token
        )

    async def check(self, bearer_token: str | None = None) -> int:
        request = health_pb2.HealthCheckRequest()
        response = await self._call(self._connected_stub().Check, request, bearer_token)
        return int(response.status)


class _RecordingHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Answers SERVING and notes the `authorization` of every call."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []

    async def Check(  # noqa: N802 -- the generated servicer's method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        self.authorizations.append(dict(context.invocation_metadata() or ()).get("authorization"))
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def health() -> AsyncIterator[tuple[str, _RecordingHealth]]:
    """A loopback server's target and its recording health servicer."""
    server = grpc.aio.server()
    servicer = _RecordingHealth()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(None)


async def test_a_call_carries_its_own_token_or_the_clients_and_a_provider_is_asked_each_time(
    health: tuple[str, _RecordingHealth],
) -> None:
    target, servicer = health
    asked = 0

    async def provider() -> str:
        nonlocal asked
        asked += 1
        return f"provided-{asked}"

    async with _HealthClient(target, bearer_token=provider) as client:
        await client.check()
        await client.check()
        await client.check(bearer_token="of-the-call")
    async with _HealthClient(target) as anonymous:
        await anonymous.check()

    assert servicer.authorizations == [
        "Bearer provided-1",
        "Bearer provided-2",
        "Bearer of-the-call",
        None,
    ]


async def test_an_empty_token_or_a_failing_provider_fails_the_call_before_it_is_made(
    health: tuple[str, _RecordingHealth],
) -> None:
    target, servicer = health

    async def no_token() -> str:
        return ""

    async def auth_service_down() -> str:
        raise UnavailableError("The auth service is restarting.")

    async with _HealthClient(target, bearer_token=no_token) as client:
        with pytest.raises(UnauthenticatedError) as from_provider:
            await client.check()
        with pytest.raises(UnauthenticatedError) as given:
            await client.check(bearer_token="")
    async with _HealthClient(target, bearer_token=auth_service_down) as client:
        with pytest.raises(UnavailableError, match="restarting"):
            await client.check()

    assert servicer.authorizations == []
    for refused in (from_provider.value, given.value):
        assert (refused.reason, refused.domain) == ("CREDENTIALS_MISSING", AUTH_ERROR_DOMAIN)


async def test_a_client_connects_once_closes_twice_and_connects_again(
    health: tuple[str, _RecordingHealth],
) -> None:
    target, servicer = health
    client = _HealthClient(target)

    await client.close()  # never connected
    await client.connect()
    stub = client._connected_stub()
    await client.connect()  # already connected: the same channel
    assert client._connected_stub() is stub
    await client.close()
    await client.close()
    with pytest.raises(RuntimeError, match=r"_HealthClient is not connected.*connect\(\)"):
        await client.check()
    async with client:
        assert await client.check() == health_pb2.HealthCheckResponse.SERVING

    assert len(servicer.authorizations) == 1
    assert repr(client) == f"_HealthClient(target={target!r})"
