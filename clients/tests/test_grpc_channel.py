"""The SDK clients' channel: plaintext reaches a plaintext server; TLS does not talk to one."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mainmast._grpc_channel import open_channel
from mainmast.testing import health_status


async def test_a_plaintext_channel_answers_and_a_tls_one_refuses_a_plaintext_server() -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        plaintext = open_channel(f"127.0.0.1:{port}", options=(("grpc.enable_retries", 0),))
        tls = open_channel(f"127.0.0.1:{port}", credentials=grpc.ssl_channel_credentials())
        try:
            assert await health_status(plaintext) == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_status(tls, deadline_seconds=5)
        finally:
            await plaintext.close(None)
            await tls.close(None)
    finally:
        await server.stop(None)

    assert refused.value.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
