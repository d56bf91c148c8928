"""Processes of the llm gateway benchmark: started in their own process groups, watched for
CPU time, always stopped; and the virtual environments of the contenders that are not ours.

Every child runs in a new session, so its process group holds whatever it starts (LiteLLM's
server may fork) and one signal to the group stops them all. Output goes to a log file in
the run's temporary folder, which nobody has to keep reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from bench.logging import _installed_version

STOP_TIMEOUT_SECONDS: Final = 30.0
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")

HERE: Final = Path(__file__).resolve().parent
REPOSITORY: Final = HERE.parent
VENVS: Final = HERE / ".venvs"


class Child:
    """A started process group: its leader, its label, its log file."""

    def __init__(self, label: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.label = label
        self.process = process
        self.log = log

    @property
    def running(self) -> bool:
        """Whether the group's leader has not exited yet."""
        return self.process.returncode is None

    def cpu_seconds(self) -> float:
        """User and system CPU time of every live process in the group, in seconds."""
        return group_cpu_seconds(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the child's output, to explain a failure."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self) -> None:
        """SIGTERM to the whole group, then SIGKILL if it has not exited in time."""
        if self.running:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                _signal_group(self.process.pid, signal.SIGKILL)
                await self.process.wait()
        # The leader is gone; anything it left behind in the group goes too.
        _signal_group(self.process.pid, signal.SIGKILL)


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


async def spawn(
    label: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin_pipe: bool = False,
) -> Child:
    """Start `argv` as the leader of a new process group, its output in `log`."""
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin_pipe else asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Child(label, process, log)


def group_cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) of the live processes whose process group is `group`."""
    total_ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        # The command name (field 2) may hold spaces and parentheses; fields after the last
        # ")" are numbered from 3: pgrp is field 5, utime 14, stime 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group:
            total_ticks += int(fields[11]) + int(fields[12])
    return total_ticks / _CLOCK_TICKS


def own_cpu_seconds() -> float:
    """This process's CPU seconds, every thread included (grpc's and httpx's too)."""
    times = os.times()
    return times.user + times.system


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (for servers that cannot take 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RefusingPort:
    """A port of 127.0.0.1 where every connection is refused: the dead provider.

    The socket is bound but never listens, so nothing else can take the port while the
    benchmark runs and a connection attempt gets ECONNREFUSED at once.
    """

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """The base URL of the dead provider."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Free the port."""
        self._socket.close()


async def wait_until(
    child: Child,
    ready: Callable[[], Awaitable[bool]],
    *,
    what: str,
    timeout_seconds: float,
    interval: float = 0.2,
) -> None:
    """Poll `ready()` until it returns True; if the child exits first, or the time runs
    out, or anything else goes wrong, stop the child and raise."""
    try:
        await _poll(child, ready, what, timeout_seconds, interval)
    except BaseException:
        await child.stop()
        raise


async def _poll(
    child: Child,
    ready: Callable[[], Awaitable[bool]],
    what: str,
    timeout_seconds: float,
    interval: float,
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not child.running:
            raise RuntimeError(
                f"{child.label} exited with status {child.process.returncode} "
                f"before {what}:\n{child.log_tail()}"
            )
        with contextlib.suppress(OSError, ValueError):
            if await ready():
                return
        await asyncio.sleep(interval)
    raise TimeoutError(
        f"{child.label}: not {what} within {timeout_seconds:g} s:\n{child.log_tail()}"
    )


def uv_executable() -> str:
    """uv: the one `uv run` names in UV, else the one on the PATH, else the Makefile's copy."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return found
    tools_copy = REPOSITORY / ".tools" / "uv" / "bin" / "uv"
    if tools_copy.exists():
        return str(tools_copy)
    raise SystemExit("the llm gateway benchmark needs uv to build its contenders' environments")


def contender_environment(
    name: str, requirements: tuple[str, ...], distribution: str, version: str
) -> Path:
    """bench/.venvs/<name> with `requirements` installed (made once, reused); its bin folder.

    They are installed again when `distribution` is not at `version` there.
    """
    folder = VENVS / name
    python = folder / "bin" / "python"
    if _installed_version(python, distribution) != version:
        uv = uv_executable()
        print(
            f"installing {' '.join(requirements)} into {folder.relative_to(REPOSITORY)}",
            flush=True,
        )
        interpreter = f"{sys.version_info.major}.{sys.version_info.minor}"
        subprocess.run(
            [uv, "venv", "--quiet", "--allow-existing", "--python", interpreter, str(folder)],
            check=True,
        )
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), *requirements], check=True
        )
        installed = _installed_version(python, distribution)
        if installed != version:
            raise SystemExit(f"{folder} has {distribution} {installed}, not {version}")
    return folder / "bin"
