"""`make run`'s fleet runner starts the three services, reports them ready when each
answers its health check, and stops them all cleanly on Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import grpc.aio
import pytest
from grpc_health.v1 import health_pb2

from mainmast.testing import health_status

RUN_FLEET = Path(__file__).resolve().parent.parent / "scripts" / "run_fleet.py"
WAIT_SECONDS = 60
NAMES = ("auth", "config", "llm")


def _free_loopback_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_the_fleet_starts_every_service_and_stops_them_all(
    stop_signal: signal.Signals, tmp_path: Path
) -> None:
    ports = dict(zip(NAMES, _free_loopback_ports(len(NAMES)), strict=True))
    env = {f"MAINMAST_{name.upper()}_LISTEN": f"127.0.0.1:{port}" for name, port in ports.items()}
    env |= {f"MAINMAST_{name.upper()}_METRICS_LISTEN": "127.0.0.1:0" for name in NAMES}
    env["MAINMAST_DATA_DIR"] = str(tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RUN_FLEET),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    output: list[str] = []
    try:
        assert process.stdout is not None
        async with asyncio.timeout(WAIT_SECONDS):
            while not any("ready:" in line for line in output):
                raw = await process.stdout.readline()
                assert raw, f"the fleet ended before it was ready: {output[-20:]}"
                output.append(raw.decode())

        for port in ports.values():
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                status = await health_status(channel)
                assert status == health_pb2.HealthCheckResponse.SERVING

        process.send_signal(stop_signal)
        async with asyncio.timeout(WAIT_SECONDS):
            output += [raw.decode() async for raw in process.stdout]
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    stopped = {line.split("|")[0].strip() for line in output if '"event":"stopped"' in line}
    assert stopped == set(NAMES)
