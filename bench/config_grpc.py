"""The config service over gRPC on a Key Vault backend, side by side with the Key Vault SDK
called directly and with netrun-config 2.0.0, all on one local vault.

`uv run --all-packages python -m bench config_grpc` starts, each in a process group of
its own (`bench/_config_processes.py`; all stopped at the end, also when something fails):

1. the local vault (`bench/_config_vault_process.py`): HTTPS on 127.0.0.1, Key Vault's
   REST API, a certificate authority made at start, a count of the requests it answers;
   and in front of it a proxy that adds 10 ms each way, the vault as if 20 ms away;
2. `mainmast-auth serve` with a seeded SQLite database (`bench/_llm_gateways.start_auth`),
   and an access token of its user;
3. the config service (`bench/_config_server.py`) with the vault as its only backend, an
   access policy that lets that user read `bench/*`, callers authenticated by their tokens
   (the default); the same with `auth_required=false` (dev mode), so the cost of the
   token on every call shows; and the same as the first, on the vault through the proxy;
4. netrun-config 2.0.0 (`bench/_config_netrun_worker.py`, in bench/.venvs/netrun-config).

This process is the load generator. It measures, in one run:

- GetSecret on cache hits through a grpc.aio stub (with a token, and in dev mode) and
  through `ConfigClient.get_secret` with its own cache off, at concurrency 1 and 32;
  `ConfigClient.get_secret` answered from its cache; the SDK's aio `SecretClient`
  reading the vault directly (one TLS context, and for reference a CA file path, which
  makes a TLS context and connection per request); netrun-config's cached and uncached
  reads (sync, in its own process);
- a storm of 1000 concurrent reads of a name nobody has read, on the vault and on the
  vault 20 ms away: requests that reach the vault;
- the vault down, for a name each cache holds but whose entry has expired: failed reads.

Targets (issue 4): a cached GetSecret p50 under 1 ms over gRPC; one vault request per
storm; zero failed reads while the vault is down.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.metadata
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
import jwt

from bench._config_processes import (
    PipedChild,
    Vault,
    access_policy,
    start_config,
    start_netrun,
    start_vault,
)
from bench._config_vault import FAR_VAULT_ONE_WAY_SECONDS, sdk_client
from bench._llm_gateways import start_auth
from bench._llm_load import LOAD_GENERATOR, LoadRow, measure
from bench._llm_processes import HERE, Child, contender_environment
from mainmast.config import ConfigClient, ConfigClientConfig
from mainmast.config.v1 import config_service_pb2, config_service_pb2_grpc, resources_pb2
from mainmast_config._names import key_vault_name

NETRUN_VERSION: Final = "2.0.0"

HIT: Final = "bench/hit"
DOWN: Final = "bench/down"
DOWN_TTL_SECONDS: Final = 1.0
"""The service's TTL of DOWN, and netrun-config's of its `short-ttl` vault."""
NEAR: Final = "near"
"""The route to the vault on loopback: a read takes about a millisecond."""
FAR: Final = "far"
"""The route through the vault's latency proxy: a 20 ms round trip."""
VALUE_PREFIX: Final = "bench-value-not-a-real-secret-"

STORM_READS: Final = 1000
STORM_REPEATS: Final = 5
STORM_CONTENDERS: Final = ("mainmast", "sdk_direct", "netrun_threads", "netrun_anyio_pool")
DOWN_READS: Final = 1000
ANYIO_THREADS: Final = 40
"""The size of the thread pool in which FastAPI runs a sync dependency (anyio's default)."""
P50_TARGET_MS: Final = 1.0

GRPC_CALLS: Final = {1: 2000, 32: 8000}
CLIENT_CACHE_CALLS: Final = 50_000
SDK_CALLS: Final = {1: 1000, 32: 2000}
SDK_PER_REQUEST_TLS_CALLS: Final = 200
NETRUN_SECONDS: Final = 3.0

GRPC_TOKEN: Final = "GetSecret, grpc.aio stub, token"
GRPC_DEV: Final = "GetSecret, grpc.aio stub, dev mode (no token)"
CLIENT_OFF: Final = "ConfigClient.get_secret, client cache off"
CLIENT_HIT: Final = "ConfigClient.get_secret, client cache hit"
SDK_DIRECT: Final = "SecretClient (aio) direct, one TLS context"
SDK_PER_REQUEST_TLS: Final = "SecretClient (aio) direct, CA file path"
NETRUN_HIT: Final = "netrun-config get_secret, cache hit"
NETRUN_MISS: Final = "netrun-config get_secret, cache miss"

RESULTS: Final = HERE / "results" / "config_grpc.json"

Call = Callable[[int], Awaitable[object]]


def _value(vault_name: str) -> str:
    return VALUE_PREFIX + vault_name


def _vault_name(name: str) -> str:
    spelled = key_vault_name(name)
    if spelled is None:
        raise ValueError(f"Key Vault cannot spell {name!r}")
    return spelled


def _checked(answer: str | None, vault_name: str, contender: str) -> None:
    if answer != _value(vault_name):
        raise RuntimeError(f"{contender} answered {answer!r} for {vault_name}")


def _checker(name: str, contender: str) -> Callable[[str | None], None]:
    """A check of `contender`'s answers for `name` that costs a comparison per call."""
    vault_name = _vault_name(name)
    expected = _value(vault_name)

    def check(answer: str | None) -> None:
        if answer != expected:
            _checked(answer, vault_name, contender)

    return check


def _stub_call(
    stub: config_service_pb2_grpc.ConfigServiceAsyncStub,
    name: str,
    metadata: tuple[tuple[str, str], ...],
    contender: str,
) -> Call:
    request = config_service_pb2.GetSecretRequest(name=name)
    check = _checker(name, contender)

    async def call(_: int) -> None:
        response = await stub.GetSecret(request, metadata=metadata, timeout=30)
        check(response.secret.value)

    return call


async def _grpc_rows(
    address: str,
    dev_address: str,
    token: str,
    watched: Sequence[Child],
) -> list[LoadRow]:
    """GetSecret hits through a stub (token, dev mode) and through ConfigClient (cache off
    and on); contenders take turns at each concurrency."""
    metadata = (("authorization", f"Bearer {token}"),)
    rows: list[LoadRow] = []
    client_off = ConfigClient(address, token=token, config=ConfigClientConfig(cache_ttl_seconds=0))
    client_on = ConfigClient(address, token=token)
    async with (
        grpc.aio.insecure_channel(address) as channel,
        grpc.aio.insecure_channel(dev_address) as dev_channel,
        client_off,
        client_on,
    ):
        stub = config_service_pb2_grpc.ConfigServiceStub(channel)
        dev_stub = config_service_pb2_grpc.ConfigServiceStub(dev_channel)

        def through_client(client: ConfigClient, contender: str) -> Call:
            check = _checker(HIT, contender)

            async def call(_: int) -> None:
                check((await client.get_secret(HIT)).value)

            return call

        contenders: list[tuple[str, Call, dict[int, int]]] = [
            (GRPC_TOKEN, _stub_call(stub, HIT, metadata, GRPC_TOKEN), GRPC_CALLS),
            (GRPC_DEV, _stub_call(dev_stub, HIT, (), GRPC_DEV), GRPC_CALLS),
            (CLIENT_OFF, through_client(client_off, CLIENT_OFF), GRPC_CALLS),
            (
                CLIENT_HIT,
                through_client(client_on, CLIENT_HIT),
                {1: CLIENT_CACHE_CALLS, 32: CLIENT_CACHE_CALLS},
            ),
        ]
        for concurrency in (1, 32):
            for contender, call, calls in contenders:
                rows.append(
                    await measure(
                        contender,
                        call,
                        concurrency=concurrency,
                        calls=calls[concurrency],
                        warm_up_calls=calls[concurrency] // 10,
                        watched=watched,
                    )
                )
    return rows


async def _sdk_rows(vault: Vault, watched: Sequence[Child]) -> list[LoadRow]:
    """The SDK's aio client reading the vault directly, on every call."""
    rows: list[LoadRow] = []
    name = _vault_name(HIT)
    client = sdk_client(vault.url, vault.ca_path)
    try:
        check = _checker(HIT, SDK_DIRECT)

        async def direct(_: int) -> None:
            check((await client.get_secret(name)).value)

        for concurrency in (1, 32):
            calls = SDK_CALLS[concurrency]
            rows.append(
                await measure(
                    SDK_DIRECT,
                    direct,
                    concurrency=concurrency,
                    calls=calls,
                    warm_up_calls=calls // 10,
                    watched=watched,
                )
            )
    finally:
        await client.close()
    per_request = sdk_client(vault.url, vault.ca_path, tls_context_per_request=True)
    try:

        async def per_request_tls(_: int) -> None:
            _checked((await per_request.get_secret(name)).value, name, SDK_PER_REQUEST_TLS)

        rows.append(
            await measure(
                SDK_PER_REQUEST_TLS,
                per_request_tls,
                concurrency=1,
                calls=SDK_PER_REQUEST_TLS_CALLS,
                warm_up_calls=SDK_PER_REQUEST_TLS_CALLS // 10,
                watched=watched,
            )
        )
    finally:
        await per_request.close()
    return rows


async def _netrun_rows(netrun: PipedChild) -> list[LoadRow]:
    """netrun-config's reads, timed in its own process (one thread: its client is sync)."""
    name = _vault_name(HIT)
    _checked((await netrun.ask("read", name=name))["value"], name, NETRUN_HIT)
    rows = []
    for contender, op in ((NETRUN_HIT, "hits"), (NETRUN_MISS, "misses")):
        timed = await netrun.ask(op, name=name, seconds=NETRUN_SECONDS)
        row = LoadRow(
            contender=contender,
            concurrency=1,
            calls=int(timed["calls"]),
            errors=0,
            seconds=float(timed["seconds"]),
            p50_ms=float(timed["p50_ms"]),
            p99_ms=float(timed["p99_ms"]),
        )
        print(
            f"  {contender:<34} x1   p50 {row.p50_ms:7.3f} ms  p99 {row.p99_ms:7.3f} ms"
            f"  {row.per_second:9,.0f}/s  (in its own process)",
            flush=True,
        )
        rows.append(row)
    return rows


async def _gathered(
    read: Callable[[], Awaitable[str | None]], count: int
) -> tuple[list[str | None], list[BaseException], float]:
    """`count` concurrent reads: their answers, their errors, seconds to the last one."""
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(read() for _ in range(count)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    answers = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    return answers, errors, elapsed


def _first_error(errors: Sequence[BaseException]) -> str:
    if not errors:
        return ""
    error = errors[0]
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"[:200]
    return f"{type(error).__name__}: {error}"[:200]


def _states(states: Sequence[resources_pb2.CacheState.ValueType]) -> dict[str, int]:
    counted = collections.Counter(resources_pb2.CacheState.Name(state) for state in states)
    return {state.removeprefix("CACHE_STATE_").lower(): count for state, count in counted.items()}


async def _service_reads(
    stub: config_service_pb2_grpc.ConfigServiceAsyncStub,
    name: str,
    metadata: tuple[tuple[str, str], ...],
    count: int,
) -> dict[str, Any]:
    """`count` concurrent GetSecret calls of `name`: failures, cache states, seconds."""
    request = config_service_pb2.GetSecretRequest(name=name)
    states: list[resources_pb2.CacheState.ValueType] = []

    async def read() -> str:
        response = await stub.GetSecret(request, metadata=metadata, timeout=60)
        states.append(response.secret.cache_state)
        return response.secret.value

    answers, errors, elapsed = await _gathered(read, count)
    wrong = sum(answer != _value(_vault_name(name)) for answer in answers)
    return {
        "reads": count,
        "failed_reads": len(errors) + wrong,
        "seconds": elapsed,
        "cache_states": _states(states),
        "first_error": _first_error(errors),
    }


async def _sdk_reads(client: Any, name: str, count: int) -> dict[str, Any]:
    """`count` concurrent reads of `name` straight from the vault through the SDK."""

    async def read() -> str | None:
        return str((await client.get_secret(name)).value)

    answers, errors, elapsed = await _gathered(read, count)
    wrong = sum(answer != _value(name) for answer in answers)
    return {
        "reads": count,
        "failed_reads": len(errors) + wrong,
        "seconds": elapsed,
        "first_error": _first_error(errors),
    }


async def _netrun_reads(
    netrun: PipedChild, name: str, *, threads: int, vault: str = "default"
) -> dict[str, Any]:
    """netrun-config's reads of `name` on a pool of `threads` threads; None is a failed read."""
    answer = await netrun.ask(
        "concurrent", name=name, vault=vault, threads=threads, reads=STORM_READS
    )
    return {
        "reads": answer["reads"],
        "failed_reads": answer["none"] + answer["exceptions"],
        "none_results": answer["none"],
        "seconds": answer["seconds"],
    }


async def _counted(vault: Vault, reads: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The figures of `reads`, with the vault requests they made."""
    before = await vault.request_count()
    figures = await reads
    return {**figures, "vault_requests": await vault.request_count() - before}


def _storm_name(route: str, contender: str, repetition: int) -> str:
    """A name nobody reads before its storm (the vault's spelling: `_vault_name`)."""
    return f"bench/storm-{route}-{contender.replace('_', '-')}-{repetition}"


def _storm_summary(storms: list[dict[str, Any]]) -> dict[str, Any]:
    requests = [storm["vault_requests"] for storm in storms]
    seconds = [storm["seconds"] for storm in storms]
    return {
        "vault_requests_median": statistics.median(requests),
        "vault_requests_min": min(requests),
        "vault_requests_max": max(requests),
        "failed_reads": sum(storm["failed_reads"] for storm in storms),
        "seconds_median": statistics.median(seconds),
        "storms": storms,
    }


async def _storms(
    vault: Vault,
    route: str,
    stub: config_service_pb2_grpc.ConfigServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
    netrun: PipedChild,
) -> dict[str, dict[str, Any]]:
    """STORM_REPEATS storms of 1000 concurrent reads of a name nobody has read, per
    contender (taking turns), on one route to the vault: NEAR (loopback) or FAR (through
    the latency proxy)."""
    url = vault.url if route == NEAR else vault.far_url
    netrun_vault = "default" if route == NEAR else "far"
    client = sdk_client(url, vault.ca_path)
    storms: dict[str, list[dict[str, Any]]] = {contender: [] for contender in STORM_CONTENDERS}

    def storm(contender: str, name: str) -> Awaitable[dict[str, Any]]:
        match contender:
            case "mainmast":
                return _service_reads(stub, name, metadata, STORM_READS)
            case "sdk_direct":
                return _sdk_reads(client, _vault_name(name), STORM_READS)
            case "netrun_threads":
                threads = STORM_READS
            case _:
                threads = ANYIO_THREADS
        return _netrun_reads(netrun, _vault_name(name), threads=threads, vault=netrun_vault)

    try:
        # Each contender reads another name first, so its connection to the vault (and
        # token) is ready and the storm counts reads alone.
        warm = config_service_pb2.GetSecretRequest(name=HIT)
        await stub.GetSecret(warm, metadata=metadata, timeout=30)
        await client.get_secret(_vault_name(HIT))
        await netrun.ask("read", name=_vault_name(HIT), vault=netrun_vault)
        for repetition in range(STORM_REPEATS):
            for contender in STORM_CONTENDERS:
                name = _storm_name(route, contender, repetition)
                reads = storm(contender, name)
                storms[contender].append(await _counted(vault, reads))
    finally:
        await client.close()
    summaries = {contender: _storm_summary(runs) for contender, runs in storms.items()}
    for contender, summary in summaries.items():
        requests = [storm["vault_requests"] for storm in summary["storms"]]
        print(
            f"  {route:<5} {contender:<18} vault requests {requests}  failed reads "
            f"{summary['failed_reads']}  median {summary['seconds_median']:.3f} s",
            flush=True,
        )
    return summaries


async def _vault_down(
    vault: Vault,
    stub: config_service_pb2_grpc.ConfigServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
    netrun: PipedChild,
) -> dict[str, dict[str, Any]]:
    """Reads of a name each cache has held, once the vault is down and the entry expired."""
    name = _vault_name(DOWN)
    response = await stub.GetSecret(
        config_service_pb2.GetSecretRequest(name=DOWN), metadata=metadata
    )
    _checked(response.secret.value, name, "the config service")
    _checked((await netrun.ask("read", name=name, vault="short-ttl"))["value"], name, NETRUN_HIT)
    client = sdk_client(vault.url, vault.ca_path)
    try:
        _checked((await client.get_secret(name)).value, name, SDK_DIRECT)
        await vault.go_down()
        await asyncio.sleep(DOWN_TTL_SECONDS * 1.5)  # every cached entry of DOWN expires
        down = {
            "mainmast": await _service_reads(stub, DOWN, metadata, DOWN_READS),
            "sdk_direct": await _sdk_reads(client, name, DOWN_READS),
            "netrun_threads": await _netrun_reads(
                netrun, name, threads=DOWN_READS, vault="short-ttl"
            ),
        }
    finally:
        await client.close()
    for label, figures in down.items():
        print(
            f"  {label:<18} failed reads {figures['failed_reads']:5} of {figures['reads']}"
            f"  {figures['seconds']:.3f} s",
            flush=True,
        )
    return down


async def _run(folder: Path, netrun_bin: Path) -> dict[str, Any]:
    started: list[Child | PipedChild] = []
    try:
        vault = await start_vault(folder)
        started.append(vault.piped)
        names = [HIT, DOWN] + [
            _storm_name(route, contender, repetition)
            for route in (NEAR, FAR)
            for contender in STORM_CONTENDERS
            for repetition in range(STORM_REPEATS)
        ]
        for name in names:
            await vault.set_secret(_vault_name(name), _value(_vault_name(name)))
        auth, auth_address, token = await start_auth(folder)
        started.append(auth)
        subject = str(jwt.decode(token, options={"verify_signature": False})["sub"])
        policy = folder / "access-policy.yaml"
        policy.write_text(access_policy(subject, "bench/*"), encoding="utf-8")
        authenticated = {
            "auth_target": auth_address,
            "access_policy_file": os.fspath(policy),
            "cache_ttl_overrides": json.dumps({DOWN: DOWN_TTL_SECONDS}),
        }
        services: dict[str, tuple[Child, str]] = {}
        for label, settings, far in (
            ("config", authenticated, False),
            ("config-dev", {"auth_required": "false"}, False),
            ("config-far", authenticated, True),
        ):
            services[label] = await start_config(
                folder,
                label,
                vault,
                settings=settings,
                ready_event="auth.keys_ready" if "auth_target" in settings else "",
                far=far,
            )
            started.append(services[label][0])
        netrun, versions = await start_netrun(folder, netrun_bin, vault)
        started.append(netrun)
        (config, address), (dev, dev_address) = services["config"], services["config-dev"]
        print(
            f"vault {vault.url} (far: {vault.far_url}); config {address} (token), "
            f"{dev_address} (dev mode), {services['config-far'][1]} (far vault)"
        )
        print(f"netrun-config worker: {versions}", flush=True)
        metadata = (("authorization", f"Bearer {token}"),)
        print("Reads of a cached name:", flush=True)
        rows = await _grpc_rows(address, dev_address, token, [config, dev, vault.piped.child])
        rows += await _sdk_rows(vault, [vault.piped.child])
        rows += await _netrun_rows(netrun)
        storms: dict[str, dict[str, Any]] = {}
        async with (
            grpc.aio.insecure_channel(address) as channel,
            grpc.aio.insecure_channel(services["config-far"][1]) as far_channel,
        ):
            stub = config_service_pb2_grpc.ConfigServiceStub(channel)
            far_stub = config_service_pb2_grpc.ConfigServiceStub(far_channel)
            print(f"A storm of {STORM_READS} concurrent reads of a cold name:", flush=True)
            storms[NEAR] = await _storms(vault, NEAR, stub, metadata, netrun)
            storms[FAR] = await _storms(vault, FAR, far_stub, metadata, netrun)
            print(f"The vault down, {DOWN_READS} reads of an expired entry:", flush=True)
            down = await _vault_down(vault, stub, metadata, netrun)
        return {"rows": rows, "storms": storms, "vault_down": down, "netrun_versions": versions}
    finally:
        for child in reversed(started):
            await child.stop()


def _cores(row: LoadRow, label: str) -> str:
    value = row.cpu_cores.get(label)
    return "" if value is None else f"{value:.2f}"


def _latency_table(rows: Sequence[LoadRow]) -> str:
    lines = [
        "| contender | concurrency | p50 | p99 | per second | CPU: load generator | CPU: server |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        server_label = {GRPC_DEV: "config-dev"}.get(row.contender, "config")
        if row.contender in (SDK_DIRECT, SDK_PER_REQUEST_TLS):
            server_label = "local vault"
        lines.append(
            f"| {row.contender} | {row.concurrency} | {row.p50_ms:.3f} ms | {row.p99_ms:.3f} ms "
            f"| {row.per_second:,.0f} | {_cores(row, LOAD_GENERATOR)} "
            f"| {_cores(row, server_label) if row.contender != CLIENT_HIT else ''} |"
        )
    return "\n".join(lines)


STORM_TITLES: Final = {
    "mainmast": f"config service, GetSecret over gRPC ({STORM_READS} tasks)",
    "sdk_direct": f"SecretClient (aio) direct ({STORM_READS} tasks)",
    "netrun_threads": f"netrun-config ({STORM_READS} threads)",
    "netrun_anyio_pool": f"netrun-config ({ANYIO_THREADS} threads, anyio's pool)",
}


def _requests_cell(summary: dict[str, Any]) -> str:
    low, high = summary["vault_requests_min"], summary["vault_requests_max"]
    spread = "" if low == high else f" ({low}-{high})"
    return f"{summary['vault_requests_median']:g}{spread}"


def _outcome_table(storms: dict[str, Any], down: dict[str, Any]) -> str:
    one_way_ms = FAR_VAULT_ONE_WAY_SECONDS * 1000
    lines = [
        f"| contender | storm of {STORM_READS}, vault on loopback: vault requests | s to last "
        f"answer | storm, vault {2 * one_way_ms:g} ms away: vault requests | s to last answer "
        "| storms: failed reads | vault down: failed reads | vault down: s to last answer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, title in STORM_TITLES.items():
        near, far = storms[NEAR][key], storms[FAR][key]
        outage = down.get(key)
        outage_cells = (
            f"{outage['failed_reads']} of {outage['reads']} | {outage['seconds']:.3f}"
            if outage
            else "| "
        )
        lines.append(
            f"| {title} | {_requests_cell(near)} | {near['seconds_median']:.3f} "
            f"| {_requests_cell(far)} | {far['seconds_median']:.3f} "
            f"| {near['failed_reads'] + far['failed_reads']} of {2 * STORM_REPEATS * STORM_READS} "
            f"| {outage_cells} |"
        )
    return "\n".join(lines)


def _verdicts(rows: Sequence[LoadRow], storms: dict[str, Any], down: dict[str, Any]) -> list[Any]:
    by_key = {(row.contender, row.concurrency): row for row in rows}
    p50 = by_key[(GRPC_TOKEN, 1)].p50_ms
    service_storms = [storms[route]["mainmast"] for route in (NEAR, FAR)]
    service_requests = [
        storm["vault_requests"] for summary in service_storms for storm in summary["storms"]
    ]
    return [
        (
            f"cached GetSecret p50 < {P50_TARGET_MS:g} ms over gRPC (token, concurrency 1)",
            f"{p50:.3f} ms",
            p50 < P50_TARGET_MS,
        ),
        (
            f"one vault request per storm of {STORM_READS} ({len(service_requests)} storms)",
            (
                f"{service_requests[0]} each"
                if len(set(service_requests)) == 1
                else f"{min(service_requests)}-{max(service_requests)}"
            ),
            set(service_requests) == {1}
            and all(summary["failed_reads"] == 0 for summary in service_storms),
        ),
        (
            "zero failed reads while the vault is down (cached name)",
            f"{down['mainmast']['failed_reads']} of {down['mainmast']['reads']}",
            down["mainmast"]["failed_reads"] == 0,
        ),
    ]


def _verdict_table(verdicts: list[Any]) -> str:
    lines = ["| target | measured | met |", "| --- | ---: | --- |"]
    lines += [
        f"| {target} | {measured} | {'met' if met else 'MISSED'} |"
        for target, measured, met in verdicts
    ]
    return "\n".join(lines)


def _machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def main() -> None:
    """Start the processes, measure, stop them, print the tables, save the figures."""
    workspace = {
        distribution: importlib.metadata.version(distribution)
        for distribution in ("azure-keyvault-secrets", "azure-core", "azure-identity")
    }
    netrun_bin = contender_environment(
        "netrun-config",
        (
            f"netrun-config[azure]=={NETRUN_VERSION}",
            # The same Azure SDK as the service's, so the SDK is not what differs.
            *(f"{distribution}=={version}" for distribution, version in workspace.items()),
        ),
        "netrun-config",
        NETRUN_VERSION,
    )
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mainmast-bench-config-") as folder:
        figures = asyncio.run(_run(Path(folder), netrun_bin))
    rows, storms, down = figures["rows"], figures["storms"], figures["vault_down"]
    verdicts = _verdicts(rows, storms, down)
    machine = _machine(load_before)
    print()
    print(_latency_table(rows))
    print()
    print(_outcome_table(storms, down))
    print()
    print(_verdict_table(verdicts))
    print(
        f"\nnetrun-config worker: {figures['netrun_versions']}; workspace: {workspace}"
        f"\nload average before {load_before[0]:.2f}, after {machine['load_average_after'][0]:.2f}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "machine": machine,
        "versions": {"workspace": workspace, "netrun_worker": figures["netrun_versions"]},
        "rows": [asdict(row) | {"per_second": row.per_second} for row in rows],
        "storms": storms,
        "vault_down": down,
        "targets": [
            {"target": target, "measured": measured, "met": met}
            for target, measured, met in verdicts
        ],
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nsaved {RESULTS.relative_to(HERE.parent)}")
