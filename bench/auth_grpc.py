"""The auth service over gRPC: Check latency and throughput, and the password login rate.

`uv run --all-packages python -m bench auth_grpc` starts `mainmast-auth serve` in its own
process on a free loopback port, with SQLite in a temporary folder seeded beforehand
(tenant t00000 with its default roles and bob, a member, as in bench/auth_core.py), and
measures from this one client process, in one run:

1. Check through a bare grpc.aio stub on one channel, at concurrency 1 and 32.
2. For reference, GetJwks on the same channel: a call that needs no bearer token, hence
   no token verification and no database reads; the floor of gRPC and the runtime.
3. Check through `AuthClient.check` as an application calls it (the principal taken from
   the bearer token, verified locally), its decision cache off and then on, at 1 and 32.
4. IssueToken with the password grant (a login), at concurrency 1 and 4.
5. Side by side, what a team would otherwise do in process: a plain `casbin.Enforcer`
   holding the same policy lines, read back from the service's database.

Targets: Check p50 under 1 ms on loopback, and at least 3000 checks/s from one process.
Each row runs for a fixed time after a short warm-up; the service is stopped at the end,
also when a row fails. The client runs on uvloop's event loop, as the service does (and
as uvicorn runs FastAPI applications).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin
import grpc.aio

from bench.auth_core import REQUESTS, _LinesAdapter
from mainmast.auth import AuthClient, AuthClientConfig
from mainmast.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from mainmast.db import DatabasePool
from mainmast.runtime._run import event_loop_factory
from mainmast_auth._policy_model import CASBIN_MODEL, PolicyLine
from mainmast_auth._store_migrations import migrate_database
from mainmast_auth._store_policies import load_policy
from mainmast_auth.testing import seed_tenant

TENANT = "tenants/t00000"
USERNAME, PASSWORD = "bob", "a long benchmark password, not a real one"
# Only questions about the caller's own tenant: a member asking about another tenant is
# refused (PERMISSION_DENIED) before any decision is made.
CHECKS = tuple(request for request in REQUESTS if request[1] == TENANT)

CHECK_SECONDS = 3.0
LOGIN_SECONDS = 4.0
WARM_UP_SECONDS = 0.5
P50_TARGET_MS = 1.0
THROUGHPUT_TARGET = 3000.0
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "auth_grpc.json"


@dataclass(frozen=True, slots=True)
class Row:
    """One measured contender at one concurrency."""

    name: str
    concurrency: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        """Completed calls per second of wall time."""
        return self.calls / self.seconds


def _percentile(sorted_samples: list[float], fraction: float) -> float:
    return sorted_samples[min(len(sorted_samples) - 1, int(fraction * len(sorted_samples)))]


def _cycle() -> Iterator[tuple[str, str, str]]:
    while True:
        yield from CHECKS


async def _measure(
    name: str, call: Callable[[int], Awaitable[object]], concurrency: int, seconds: float
) -> Row:
    """Run `concurrency` tasks calling `call` back to back for `seconds` after a warm-up;
    every call's latency counts."""
    samples: list[float] = []
    stop_at = 0.0

    async def worker(number: int, record: bool) -> None:
        clock = time.perf_counter
        while clock() < stop_at:
            started = clock()
            await call(number)
            if record:
                samples.append(clock() - started)

    stop_at = time.perf_counter() + WARM_UP_SECONDS
    await asyncio.gather(*(worker(number, record=False) for number in range(concurrency)))
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker(number, record=True) for number in range(concurrency)))
    elapsed = time.perf_counter() - started
    samples.sort()
    row = Row(
        name=name,
        concurrency=concurrency,
        calls=len(samples),
        seconds=elapsed,
        p50_ms=_percentile(samples, 0.50) * 1000,
        p99_ms=_percentile(samples, 0.99) * 1000,
    )
    print(
        f"  {name:<36} x{concurrency:<3} p50 {row.p50_ms:8.3f} ms, p99 {row.p99_ms:8.3f} ms, "
        f"{row.per_second:10,.0f}/s",
        flush=True,
    )
    return row


def _measure_in_process(name: str, call: Callable[[], object], seconds: float) -> Row:
    """The same figures for a synchronous call in this process (concurrency 1)."""
    clock = time.perf_counter
    stop_at = clock() + WARM_UP_SECONDS
    while clock() < stop_at:
        call()
    samples: list[float] = []
    started = clock()
    stop_at = started + seconds
    while clock() < stop_at:
        before = clock()
        call()
        samples.append(clock() - before)
    elapsed = clock() - started
    samples.sort()
    p50_ms, p99_ms = _percentile(samples, 0.50) * 1000, _percentile(samples, 0.99) * 1000
    row = Row(name, 1, len(samples), elapsed, p50_ms, p99_ms)
    print(
        f"  {name:<36} x1   p50 {row.p50_ms:8.3f} ms, p99 {row.p99_ms:8.3f} ms, "
        f"{row.per_second:10,.0f}/s",
        flush=True,
    )
    return row


async def _seed(database_url: str) -> list[PolicyLine]:
    """Migrate and seed the service's database; the policy lines it then holds."""
    await migrate_database(database_url)
    pool = DatabasePool(database_url, pool_size=1, max_overflow=0)
    try:
        await seed_tenant(pool, TENANT, USERNAME, password=PASSWORD)
        async with pool.session() as session:
            return list((await load_policy(session)).lines)
    finally:
        await pool.close()


async def _launch(folder: Path, database_url: str) -> asyncio.subprocess.Process:
    """`mainmast-auth serve` on loopback port 0 (the server picks a free port), its output
    in `service.log`."""
    with (folder / "service.log").open("wb") as log:
        return await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("mainmast-auth")),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
            env={
                **os.environ,
                "MAINMAST_DATA_DIR": str(folder),
                "MAINMAST_AUTH_DATABASE_URL": database_url,
                "MAINMAST_AUTH_LOG_JSON": "true",
            },
            stdout=log,
            stderr=log,
        )


async def _serving_address(process: asyncio.subprocess.Process, log: Path) -> str:
    """The address of the service's "serving" log line, once it is written."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        output = await asyncio.to_thread(log.read_text, encoding="utf-8")
        if process.returncode is not None:
            raise RuntimeError(f"mainmast-auth exited with status {process.returncode}:\n{output}")
        for line in output.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "serving":
                    return str(event["address"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"mainmast-auth did not serve within {START_TIMEOUT_SECONDS:g} s")


async def _stop_service(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


async def _grpc_rows(address: str, token: str) -> list[Row]:
    rows = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = auth_service_pb2_grpc.AuthServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        requests = itertools.cycle(
            [
                auth_service_pb2.CheckRequest(
                    principal=principal, tenant=tenant, permission=permission
                )
                for principal, tenant, permission in CHECKS
            ]
        )

        async def check(_: int) -> object:
            return await stub.Check(next(requests), metadata=metadata)

        jwks_request = auth_service_pb2.GetJwksRequest()

        async def get_jwks(_: int) -> object:
            return await stub.GetJwks(jwks_request)

        for concurrency in (1, 32):
            rows.append(await _measure("Check, grpc.aio stub", check, concurrency, CHECK_SECONDS))
        # The floor under Check: the same channel, server and interceptors, but a call
        # that needs no bearer token, so no token verification and no database reads.
        for concurrency in (1, 32):
            rows.append(
                await _measure(
                    "GetJwks (no auth), grpc.aio stub", get_jwks, concurrency, CHECK_SECONDS
                )
            )
    return rows


async def _client_rows(address: str, token: str) -> list[Row]:
    rows = []
    for label, ttl in (("cache off", 0.0), ("cache on", 5.0)):
        config = AuthClientConfig(target=address, decision_cache_ttl_seconds=ttl)
        async with AuthClient(config=config) as client:
            answers = _cycle()

            async def check(_: int, client: AuthClient = client, answers: Any = answers) -> bool:
                _principal, tenant, permission = next(answers)
                return await client.check(tenant, permission, bearer_token=token)

            for concurrency in (1, 32):
                rows.append(
                    await _measure(
                        f"Check, AuthClient.check, {label}", check, concurrency, CHECK_SECONDS
                    )
                )
    return rows


async def _login_rows(address: str) -> list[Row]:
    rows = []
    async with AuthClient(config=AuthClientConfig(target=address)) as client:

        async def login(_: int) -> object:
            return await client.login(TENANT, USERNAME, PASSWORD)

        for concurrency in (1, 4):
            rows.append(await _measure("IssueToken, password", login, concurrency, LOGIN_SECONDS))
    return rows


def _casbin_row(lines: list[PolicyLine]) -> tuple[Row, list[bool]]:
    """Enforcer.enforce on the service's own policy lines, and its decisions on CHECKS."""
    enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=CASBIN_MODEL), _LinesAdapter(lines))
    questions = _cycle()

    def enforce() -> bool:
        principal, tenant, permission = next(questions)
        return bool(enforcer.enforce(principal, tenant, *permission.split(":")))

    decisions = [
        bool(enforcer.enforce(principal, tenant, *permission.split(":")))
        for principal, tenant, permission in CHECKS
    ]
    row = _measure_in_process("casbin Enforcer.enforce, in process", enforce, CHECK_SECONDS)
    return row, decisions


async def _run(folder: Path) -> tuple[list[Row], bool, list[bool], int]:
    database_url = f"sqlite+aiosqlite:///{folder / 'auth.db'}"
    lines = await _seed(database_url)
    process = await _launch(folder, database_url)
    try:
        address = await _serving_address(process, folder / "service.log")
        async with AuthClient(config=AuthClientConfig(target=address)) as client:
            token = (await client.login(TENANT, USERNAME, PASSWORD)).access_token
            service_decisions = [
                await client.check(tenant, permission, bearer_token=token, principal=principal)
                for principal, tenant, permission in CHECKS
            ]
        # bob reads (member inherits viewer's *:read), may not create users, exports nothing.
        if service_decisions != [True, False, False]:
            raise RuntimeError(f"the service decided {service_decisions}, not as seeded")
        print("Over gRPC, service in its own process:", flush=True)
        rows = await _grpc_rows(address, token)
        rows += await _client_rows(address, token)
        rows += await _login_rows(address)
    finally:
        await _stop_service(process)
    print("In process:", flush=True)
    casbin_row, casbin_decisions = _casbin_row(lines)
    return [*rows, casbin_row], casbin_decisions == service_decisions, service_decisions, len(lines)


def _verdicts(rows: list[Row]) -> dict[str, Any]:
    """The issue's two targets, judged on the rows that reach the service every call."""
    by_key = {(row.name, row.concurrency): row for row in rows}
    judged: dict[str, Any] = {}
    for name in ("Check, grpc.aio stub", "Check, AuthClient.check, cache off"):
        p50 = by_key[(name, 1)].p50_ms
        rate = max(by_key[(name, 1)].per_second, by_key[(name, 32)].per_second)
        judged[name] = {
            "p50_ms_at_1": p50,
            "p50_met": p50 < P50_TARGET_MS,
            "best_per_second": rate,
            "throughput_met": rate >= THROUGHPUT_TARGET,
        }
    return judged


def _table(rows: list[Row], verdicts: dict[str, Any]) -> str:
    lines = [
        "| contender | concurrency | p50 | p99 | per second |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {row.name} | {row.concurrency} | {row.p50_ms:.3f} ms | {row.p99_ms:.3f} ms "
        f"| {row.per_second:,.0f} |"
        for row in rows
    ]
    lines += [
        "",
        "| target | contender | measured | met |",
        "| --- | --- | ---: | --- |",
    ]
    for name, verdict in verdicts.items():
        lines.append(
            f"| Check p50 < {P50_TARGET_MS:g} ms (concurrency 1) | {name} "
            f"| {verdict['p50_ms_at_1']:.3f} ms | {'met' if verdict['p50_met'] else 'MISSED'} |"
        )
        lines.append(
            f"| >= {THROUGHPUT_TARGET:,.0f} checks/s, one process | {name} "
            f"| {verdict['best_per_second']:,.0f}/s "
            f"| {'met' if verdict['throughput_met'] else 'MISSED'} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Start the service, measure every row, stop it, print the tables, save the figures."""
    with (
        tempfile.TemporaryDirectory(prefix="mainmast-bench-auth-") as folder,
        # The client on the event loop the service runs on (and uvicorn runs FastAPI on).
        asyncio.Runner(loop_factory=event_loop_factory()) as runner,
    ):
        rows, casbin_agrees, service_decisions, line_count = runner.run(_run(Path(folder)))
    verdicts = _verdicts(rows)
    print()
    print(_table(rows, verdicts))
    print(
        f"\nPolicy: {line_count} lines; the service and casbin decide alike: {casbin_agrees} "
        f"(service {service_decisions})"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "policy_lines": line_count,
        "rows": [
            {
                "name": row.name,
                "concurrency": row.concurrency,
                "calls": row.calls,
                "seconds": row.seconds,
                "p50_ms": row.p50_ms,
                "p99_ms": row.p99_ms,
                "per_second": row.per_second,
            }
            for row in rows
        ],
        "targets": {"p50_ms": P50_TARGET_MS, "checks_per_second": THROUGHPUT_TARGET},
        "verdicts": verdicts,
        "casbin_agrees": casbin_agrees,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nsaved {RESULTS.relative_to(HERE.parent)}")
