"""A service process under test: started, its JSON log lines read as they come, stopped.

Tests of a service run it as it runs in production, as its own process, and learn what
it does from its log lines (the "serving" line tells the address a port 0 became).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

DEFAULT_WAIT_SECONDS: Final = 30.0


class ServiceProcess:
    """A running process whose stdout carries JSON log lines (one object a line)."""

    def __init__(self, process: asyncio.subprocess.Process, *, wait_seconds: float) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        """Every JSON log line read so far, in order."""
        self.other_output: list[str] = []
        """Every line of output that was not a JSON object (tracebacks, prints)."""
        self._wait_seconds = wait_seconds

    async def _read_line(self) -> dict[str, Any] | None:
        """The next JSON log line, or None at the end of the output."""
        assert self.process.stdout is not None  # started with a pipe by start_service_process
        while raw := await self.process.stdout.readline():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                line = None
            if isinstance(line, dict):
                self.lines.append(line)
                return line
            self.other_output.append(raw.decode(errors="replace").rstrip("\n"))
        return None

    async def wait_for_line(self, event: str, **fields: Any) -> dict[str, Any]:
        """Read log lines until one has this event (and these fields); bounded in time.

        Raises AssertionError, with what the process printed, when the process ends first.
        """
        async with asyncio.timeout(self._wait_seconds):
            while (line := await self._read_line()) is not None:
                if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                    return line
        raise AssertionError(
            f"the process ended (status {await self.process.wait()}) before logging "
            f"{event!r}; other output: {self.other_output[-20:]}"
        )

    async def address(self) -> str:
        """The HOST:PORT the service serves on, from its "serving" line."""
        line = next((seen for seen in self.lines if seen.get("event") == "serving"), None)
        if line is None:
            line = await self.wait_for_line("serving")
        return str(line["address"])

    def send_signal(self, signum: signal.Signals) -> None:
        """Send `signum` to the process."""
        self.process.send_signal(signum)

    async def exit_code(self) -> int:
        """Read the rest of the output and wait (bounded) for the process to exit."""
        async with asyncio.timeout(self._wait_seconds):
            while await self._read_line() is not None:
                pass
            return await self.process.wait()


@contextlib.asynccontextmanager
async def start_service_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> AsyncIterator[ServiceProcess]:
    """Start `argv` with stdout and stderr piped together; kill it on the way out if it runs.

    `env` adds to (and overrides) this process's environment.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    try:
        yield ServiceProcess(process, wait_seconds=wait_seconds)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
