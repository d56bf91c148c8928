"""What tests ask of any gRPC server: its health and the services reflection lists."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def health_status(
    channel: grpc.aio.Channel, service: str = "", *, deadline_seconds: float = 10.0
) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    """The grpc.health.v1 status of `service` ("" is the server as a whole)."""
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(
        health_pb2.HealthCheckRequest(service=service), timeout=deadline_seconds
    )
    return answer.status


async def list_services(channel: grpc.aio.Channel, *, deadline_seconds: float = 10.0) -> list[str]:
    """The full names of the services that server reflection lists."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: list[str] = []
    async for response in stub.ServerReflectionInfo(requests(), timeout=deadline_seconds):
        names += [service.name for service in response.list_services_response.service]
    return names
