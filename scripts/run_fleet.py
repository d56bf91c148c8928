"""`make run`: start the whole fleet on this machine, and stop it on Ctrl-C or SIGTERM.

Each service runs as its own `mainmast-<name> serve` process, exactly as it runs in a
pod, with its default settings unless the environment says otherwise. Their output
is interleaved here, each line prefixed with the service name. When every service
answers its health check the fleet is ready; when any service exits on its own the
others are stopped and the exit status says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 40.0


@dataclass(frozen=True)
class FleetMember:
    """One service of the fleet: its command and the address it serves on."""

    name: str
    listen: str

    @property
    def program(self) -> str:
        """The service's console script, from the same environment as this Python."""
        return str(Path(sys.executable).with_name(f"mainmast-{self.name}"))

    @property
    def env_prefix(self) -> str:
        """The prefix of the service's settings in the environment."""
        return f"MAINMAST_{self.name.upper()}_"


def fleet_from_environment() -> list[FleetMember]:
    """The three services, each at its `MAINMAST_<NAME>_LISTEN` or its default address."""
    defaults = {"auth": "127.0.0.1:50051", "config": "127.0.0.1:50052", "llm": "127.0.0.1:50053"}
    return [
        FleetMember(name, os.environ.get(f"MAINMAST_{name.upper()}_LISTEN", address))
        for name, address in defaults.items()
    ]


async def _forward_output(member: FleetMember, stream: asyncio.StreamReader) -> None:
    prefix = f"{member.name:<6} | ".encode()
    while line := await stream.readline():
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


async def _wait_until_serving(member: FleetMember, process: asyncio.subprocess.Process) -> None:
    """Poll the member's health service until it answers SERVING or the process dies."""
    async with grpc.aio.insecure_channel(member.listen) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while process.returncode is None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{member.name} exited with status {process.returncode} before serving")


async def run_fleet(members: list[FleetMember]) -> int:
    """Run the members until a signal or until one of them exits; return the exit status."""
    env = dict(os.environ)
    for member in members:
        env.setdefault(f"{member.env_prefix}LISTEN", member.listen)
        # Readable lines on a terminal; JSON lines when the output goes to a file or a pipe.
        env.setdefault(f"{member.env_prefix}LOG_JSON", "false" if sys.stdout.isatty() else "true")

    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)

    processes: dict[str, asyncio.subprocess.Process] = {}
    forwarders: list[asyncio.Task[None]] = []
    try:
        for member in members:
            process = await asyncio.create_subprocess_exec(
                member.program,
                "serve",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            processes[member.name] = process
            assert process.stdout is not None  # we asked for a pipe just above
            forwarders.append(asyncio.create_task(_forward_output(member, process.stdout)))

        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await asyncio.gather(*(_wait_until_serving(m, processes[m.name]) for m in members))
        except (RuntimeError, TimeoutError) as exc:
            print(f"fleet   | not started: {exc or 'timed out waiting for health'}", flush=True)
            return 1
        addresses = ", ".join(f"{m.name} {m.listen}" for m in members)
        print(f"fleet   | ready: {addresses} (Ctrl-C stops the fleet)", flush=True)

        exits = [asyncio.create_task(p.wait()) for p in processes.values()]
        stop = asyncio.create_task(stop_requested.wait())
        await asyncio.wait([*exits, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        crashed = [name for name, p in processes.items() if p.returncode is not None]
        if crashed:
            print(f"fleet   | {', '.join(crashed)} exited; stopping the others", flush=True)
            return 1
        return 0
    finally:
        await _stop_all(processes)
        await asyncio.gather(*forwarders, return_exceptions=True)


async def _stop_all(processes: dict[str, asyncio.subprocess.Process]) -> None:
    """SIGTERM every running member (they drain and exit), then kill what remains."""
    running = [p for p in processes.values() if p.returncode is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
            await asyncio.gather(*(p.wait() for p in running))
    except TimeoutError:
        for process in running:
            if process.returncode is None:
                process.kill()
                await process.wait()


def main() -> None:
    """Parse the command line and run the fleet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    raise SystemExit(asyncio.run(run_fleet(fleet_from_environment())))


if __name__ == "__main__":
    main()
