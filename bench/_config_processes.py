"""The processes of the config benchmark: the local vault, the config services, netrun-config.

Each runs in its own process group (`bench/_llm_processes.py`: one signal stops a group,
CPU time is read per group). The vault and the netrun-config worker take commands, one
JSON line on their standard input each, and answer one JSON line on their standard output
(`PipedChild`); their other output goes to a log file in the run's temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from bench._llm_gateways import _serving_address
from bench._llm_processes import REPOSITORY, Child, spawn
from mainmast_config._local_key_vault import LOCAL_VAULT_TOKEN

START_TIMEOUT_SECONDS: Final = 60.0
ANSWER_TIMEOUT_SECONDS: Final = 300.0
NETRUN_WORKER: Final = REPOSITORY / "bench" / "_config_netrun_worker.py"


class PipedChild:
    """A process group whose leader answers JSON-line commands; see the module docstring."""

    def __init__(self, child: Child) -> None:
        self.child = child

    @classmethod
    async def spawn(
        cls, label: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None
    ) -> PipedChild:
        """Start `argv` in a new process group, from the repository's root."""
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=output,
                env={**os.environ, **(env or {})},
                cwd=REPOSITORY,
                start_new_session=True,
            )
        return cls(Child(label, process, log))

    async def read(self, seconds: float = ANSWER_TIMEOUT_SECONDS) -> dict[str, Any]:
        """The next JSON line the child writes, within `seconds`."""
        stdout = self.child.process.stdout
        if stdout is None:  # spawn() always makes the pipe
            raise RuntimeError(f"{self.child.label} has no output pipe")
        line = await asyncio.wait_for(stdout.readline(), seconds)
        if not line:
            raise RuntimeError(f"{self.child.label} exited:\n{self.child.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.child.label}: {answer['error']}")
        return answer

    async def ask(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        stdin = self.child.process.stdin
        if stdin is None:  # spawn() always makes the pipe
            raise RuntimeError(f"{self.child.label} has no input pipe")
        stdin.write((json.dumps({"op": op, **arguments}) + "\n").encode())
        await stdin.drain()
        return await self.read()

    async def stop(self) -> None:
        """Close its input (the polite way to end it), then stop the group."""
        stdin = self.child.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        await self.child.stop()


@dataclass(frozen=True, slots=True)
class Vault:
    """The local vault's process (`bench/_config_vault_process.py`)."""

    piped: PipedChild
    url: str
    far_url: str
    """The same vault through its latency proxy."""
    ca_path: str

    async def set_secret(self, name: str, value: str) -> None:
        """A new version of the Key Vault secret `name`."""
        await self.piped.ask("set", name=name, value=value)

    async def request_count(self) -> int:
        """The authorised requests the vault has answered so far."""
        return int((await self.piped.ask("requests"))["count"])

    async def go_down(self) -> None:
        """Stop serving and cut every connection."""
        await self.piped.ask("stop")


async def start_vault(folder: Path) -> Vault:
    """The local vault in its own process, once it listens."""
    piped = await PipedChild.spawn(
        "local vault",
        [sys.executable, "-m", "bench._config_vault_process"],
        log=folder / "vault.log",
    )
    try:
        opened = await piped.read(START_TIMEOUT_SECONDS)
    except BaseException:
        await piped.stop()
        raise
    return Vault(piped, str(opened["url"]), str(opened["far_url"]), str(opened["ca_path"]))


def access_policy(subject: str, pattern: str) -> str:
    """The config service's access policy: `subject` reads the secrets `pattern` matches."""
    rule = {
        "description": "the benchmark's caller reads the benchmark's secrets",
        "subjects": [subject],
        "secrets": [pattern],
    }
    return yaml.safe_dump({"version": 1, "rules": [rule]}, sort_keys=False)


async def start_config(
    folder: Path,
    label: str,
    vault: Vault,
    *,
    settings: dict[str, str],
    ready_event: str = "",
    far: bool = False,
) -> tuple[Child, str]:
    """A config service (`bench/_config_server.py`) in its own process with the local vault
    (through its latency proxy when `far`) as its only backend and `settings`
    (MAINMAST_CONFIG_* without the prefix) on top; its process and address, once it
    serves (and has logged `ready_event`, when given).

    The vault's certificate authority is trusted through SSL_CERT_FILE, not the service's
    `key_vault_ca_bundle` setting: with a bundle path, the Key Vault SDK's aio transport
    builds a TLS context and opens a new connection for every request (see
    bench/README.md), while the default verification, as against a real vault, keeps
    its connections.
    """
    data = folder / label
    data.mkdir()
    env = {
        "MAINMAST_DATA_DIR": os.fspath(data),
        "SSL_CERT_FILE": vault.ca_path,
        "MAINMAST_CONFIG_LISTEN": "127.0.0.1:0",
        "MAINMAST_CONFIG_METRICS_LISTEN": "",
        "MAINMAST_CONFIG_LOG_JSON": "true",
        "MAINMAST_CONFIG_BACKENDS": "key_vault",
        "MAINMAST_CONFIG_KEY_VAULT_URL": vault.far_url if far else vault.url,
        # A loopback vault cannot answer a challenge for *.vault.azure.net.
        "MAINMAST_CONFIG_KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
        "MAINMAST_CONFIG_DOTENV_PATH": os.fspath(data / "no.env"),
        **{f"MAINMAST_CONFIG_{key.upper()}": value for key, value in settings.items()},
    }
    child = await spawn(
        label,
        [sys.executable, "-m", "bench._config_server"],
        log=data / "service.log",
        env=env,
        cwd=REPOSITORY,
    )
    # Its JSON log lines, in its log file, say where it serves and when it is ready.
    address = await _serving_address(child, after=ready_event)
    return child, address


async def start_netrun(folder: Path, bin_folder: Path, vault: Vault) -> tuple[PipedChild, Any]:
    """The netrun-config worker, once it has said which versions it runs."""
    piped = await PipedChild.spawn(
        "netrun-config",
        [
            os.fspath(bin_folder / "python"),
            "-P",
            os.fspath(NETRUN_WORKER),
            vault.url,
            vault.far_url,
        ],
        log=folder / "netrun-config.log",
        env={"REQUESTS_CA_BUNDLE": vault.ca_path, "BENCH_VAULT_TOKEN": LOCAL_VAULT_TOKEN},
    )
    try:
        opened = await piped.read(START_TIMEOUT_SECONDS)
    except BaseException:
        await piped.stop()
        raise
    return piped, opened["versions"]
