"""SIGTERM and SIGINT drain a real service process: health turns NOT_SERVING, new calls
are refused, the call in flight completes, and the process exits 0."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mainmast.testing import ServiceProcess, start_service_process

SCRIPT = Path(__file__).with_name("runtime_slow_service.py")
SERVICE = "mainmast.test.v1.SlowService"
WAIT_SECONDS = 30


@pytest.fixture
async def service_process() -> AsyncIterator[ServiceProcess]:
    argv = [sys.executable, str(SCRIPT), "serve", "--listen", "127.0.0.1:0"]
    env = {"MAINMAST_SLOW_LOG_JSON": "true", "MAINMAST_SLOW_GRACE_PERIOD_SECONDS": "60"}
    async with start_service_process(
        [*argv, "--metrics-listen", "127.0.0.1:0"], env=env, wait_seconds=WAIT_SECONDS
    ) as process:
        yield process


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_drains_the_call_in_flight_then_exits_zero(
    service_process: ServiceProcess, stop_signal: signal.Signals
) -> None:
    serving = await service_process.wait_for_line("serving")
    address = serving["address"]
    assert not address.endswith(":0")

    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=WAIT_SECONDS
        )
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING

        slow_call = channel.unary_unary(f"/{SERVICE}/Slow")(b"call", timeout=WAIT_SECONDS)
        await service_process.wait_for_line("slow call started")

        service_process.send_signal(stop_signal)

        status = await watch.read()
        assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING

        async with grpc.aio.insecure_channel(address) as fresh:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await fresh.unary_unary(f"/{SERVICE}/Fast")(b"call", timeout=WAIT_SECONDS)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE

        service_process.send_signal(signal.SIGUSR1)
        assert await slow_call == b"slow call"
        # The health watch is itself a call in flight: end it so draining is over.
        watch.cancel()

    assert await service_process.exit_code() == 0
    events = [line["event"] for line in service_process.lines]
    assert events.index("stop signal received") < events.index("draining") < events.index("stopped")
    assert all(
        line.get("service") == "slow"
        for line in service_process.lines
        if line["event"] in {"serving", "draining", "stopped"}
    )
