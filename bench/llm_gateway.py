"""The llm gateway's added latency, throughput and failover, side by side with LiteLLM and
netrun-llm.

`uv run --all-packages python -m bench llm_gateway` starts, each in a process of its own
(`bench/_llm_processes.py` keeps them in process groups and stops them all at the end,
also when something fails):

1. a mock provider speaking OpenAI's chat completions wire format on 127.0.0.1
   (`bench/_llm_mock.py`, an asyncio HTTP/1.1 keep-alive server with prepared answers);
2. `mainmast-llm serve`, with a routing file whose aliases point at the mock as an
   OpenAI-compatible deployment, and `mainmast-auth serve`, whose tokens it verifies
   (`bench/_llm_gateways.py`, whose `start_mainmast` decides how calls authenticate);
3. the LiteLLM proxy (`litellm[proxy]`, pinned, installed into bench/.venvs/litellm with
   `uv venv` and `uv pip install` on first run), configured with the same mock, a master
   key, no database, quiet logs and telemetry off.

This process is the load generator. At concurrency 1, 16 and 64 it makes a fixed number
of chat completion calls (after a warm-up) directly to the mock (the baseline), through
mainmast over gRPC, and through LiteLLM over HTTP, and reports p50/p99 latency, the
latency each gateway adds over the direct call, calls per second and the CPU each process
used meanwhile (`bench/_llm_load.py`). The HTTP rows use a lean keep-alive client of
its own (`bench/_llm_http.py`), since httpx made the load generator the bottleneck; a
row with httpx.AsyncClient shows what it costs. Another row, mainmast's ListModels, is
the floor of its gRPC server, runtime and authentication with no provider call.

Then the failure routes (`bench/_llm_failover.py`): a primary that refuses connections,
a primary answering 503, every deployment down; the same sequence of calls through
mainmast, LiteLLM's `fallbacks`, and netrun-llm 2.0.0's `LLMFallbackChain` (in
bench/.venvs/netrun-llm, run by `bench/_llm_netrun_worker.py`).

Targets (issue 5): mainmast's added p50 at most a fifth of LiteLLM's, and more calls per
second than LiteLLM, at every concurrency.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import grpc.aio
import httpx

from bench._llm_failover import (
    ROUTE_TITLES,
    Scenario,
    litellm_scenarios,
    mainmast_scenarios,
    netrun_scenarios,
)
from bench._llm_gateways import (
    BENCH_ROUTE,
    MOCK_MODEL,
    LiteLLMGateway,
    MainmastGateway,
    MockProvider,
    start_litellm,
    start_mainmast,
    start_mock,
)
from bench._llm_http import KeepAliveClient
from bench._llm_load import LoadRow, measure
from bench._llm_mock import ANSWER_TEXT
from bench._llm_processes import HERE, REPOSITORY, Child, RefusingPort, contender_environment
from mainmast.llm.v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2
from mainmast.runtime._run import event_loop_factory

LITELLM_VERSION: Final = "1.108.7"
LITELLM_REQUIREMENTS: Final = (
    f"litellm[proxy]=={LITELLM_VERSION}",
    # Not part of litellm[proxy], yet without it LiteLLM tries (and fails) to import its
    # OpenTelemetry integration on every call, which a profile put at about 29 % of its
    # CPU time; installed, so that LiteLLM runs at its best.
    "opentelemetry-sdk==1.45.2",
)
NETRUN_VERSION: Final = "2.0.0"

CONCURRENCIES: Final = (1, 16, 64)
CALLS: Final = {1: 400, 16: 1600, 64: 3200}
WARM_UP_CALLS: Final = {1: 50, 16: 160, 64: 320}
FAILOVER_CALLS: Final = 10
ADDED_P50_RATIO_TARGET: Final = 0.2
PROMPT: Final = "Summarize this document in one sentence."
MAX_TOKENS: Final = 32

DIRECT: Final = "direct: keep-alive HTTP/1.1 -> mock"
DIRECT_HTTPX: Final = "direct: httpx.AsyncClient -> mock"
MAINMAST: Final = "mainmast-llm, gRPC"
MAINMAST_FLOOR: Final = "mainmast-llm ListModels (no provider)"
LITELLM: Final = "LiteLLM proxy, HTTP"
DIRECT_STREAM: Final = "streamed: direct -> mock"
MAINMAST_STREAM: Final = "streamed: mainmast-llm StreamComplete"
LITELLM_STREAM: Final = "streamed: LiteLLM proxy, SSE"
STREAM_CONCURRENCIES: Final = (1, 16)
STREAM_CALLS: Final = {1: 200, 16: 800}
STREAM_WARM_UP_CALLS: Final = {1: 20, 16: 80}
BASELINES: Final = {
    DIRECT_STREAM: DIRECT_STREAM,
    MAINMAST_STREAM: DIRECT_STREAM,
    LITELLM_STREAM: DIRECT_STREAM,
}
"""The direct row each row's added latency is taken over (DIRECT unless named here)."""

RESULTS: Final = HERE / "results" / "llm_gateway.json"

Call = Callable[[int], Awaitable[object]]
Opened = tuple[Call, Callable[[], Awaitable[None]]]
"""A contender's call (given the worker's number) and how to close what it opened."""


def _checked(text: str, contender: str) -> None:
    if text != ANSWER_TEXT:
        raise RuntimeError(f"{contender} answered {text[:80]!r}, not the mock's text")


def _chat_body(model: str, *, stream: bool = False) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def _streamed_text(body: bytes) -> str:
    """The text of an OpenAI chat completion stream: its deltas, up to `data: [DONE]`."""
    pieces = []
    for line in body.decode().splitlines():
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            return "".join(pieces)
        for choice in json.loads(data).get("choices") or ():
            pieces.append((choice.get("delta") or {}).get("content") or "")
    raise RuntimeError("the stream ended before data: [DONE]")


def _keep_alive_contender(
    url: str, model: str, headers: dict[str, str], contender: str, *, stream: bool = False
) -> Callable[[], Opened]:
    """Chat completions over the load generator's own HTTP/1.1 client (`_llm_http`); a
    streamed call is timed to the end of its stream."""

    def opened() -> Opened:
        body = _chat_body(model, stream=stream)
        client = KeepAliveClient(f"{url}/v1/chat/completions", body, headers)

        async def call(worker: int) -> None:
            status, body = await client.post(worker)
            if status != 200:
                raise RuntimeError(f"{contender} answered HTTP {status}: {body[:200]!r}")
            if stream:
                _checked(_streamed_text(body), contender)
            else:
                _checked(json.loads(body)["choices"][0]["message"]["content"], contender)

        return call, client.aclose

    return opened


def _httpx_contender(url: str, model: str, contender: str) -> Callable[[], Opened]:
    """Chat completions over one httpx.AsyncClient, as an application would call."""

    def opened() -> Opened:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        client = httpx.AsyncClient(limits=limits, timeout=30, trust_env=False)
        body = _chat_body(model)
        endpoint = f"{url}/v1/chat/completions"
        headers = {"content-type": "application/json"}

        async def call(_: int) -> None:
            response = await client.post(endpoint, content=body, headers=headers)
            response.raise_for_status()
            _checked(response.json()["choices"][0]["message"]["content"], contender)

        return call, client.aclose

    return opened


def _mainmast_contenders(
    stub: llm_service_pb2_grpc.LlmServiceStub, gateway: MainmastGateway
) -> tuple[Callable[[], Opened], Callable[[], Opened], Callable[[], Opened]]:
    """Complete, ListModels (the floor) and StreamComplete, on one shared channel."""
    completion_input = resources_pb2.CompletionInput(
        model=BENCH_ROUTE,
        messages=[resources_pb2.Message(role=resources_pb2.ROLE_USER, content=PROMPT)],
        max_tokens=MAX_TOKENS,
    )
    request = llm_service_pb2.CompleteRequest(input=completion_input)
    stream_request = llm_service_pb2.StreamCompleteRequest(input=completion_input)
    list_request = llm_service_pb2.ListModelsRequest()

    async def complete(_: int) -> None:
        response = await stub.Complete(request, metadata=gateway.metadata, timeout=30)
        _checked(response.completion.text, MAINMAST)

    async def list_models(_: int) -> None:
        await stub.ListModels(list_request, metadata=gateway.metadata, timeout=30)

    async def stream(_: int) -> None:
        pieces = []
        final = ""
        async for event in stub.StreamComplete(
            stream_request, metadata=gateway.metadata, timeout=30
        ):
            if event.HasField("delta"):
                pieces.append(event.delta.text)
            else:
                final = event.completion.text
        _checked("".join(pieces), MAINMAST_STREAM)
        _checked(final, MAINMAST_STREAM)

    async def nothing() -> None:
        return None

    return (
        (lambda: (complete, nothing)),
        (lambda: (list_models, nothing)),
        (lambda: (stream, nothing)),
    )


async def _load_rows(
    mock: MockProvider, mainmast: MainmastGateway, litellm: LiteLLMGateway
) -> list[LoadRow]:
    watched: list[Child] = [mock.child, *mainmast.children, litellm.child]
    async with grpc.aio.insecure_channel(mainmast.address) as channel:
        complete, list_models, stream = _mainmast_contenders(
            llm_service_pb2_grpc.LlmServiceStub(channel), mainmast
        )
        streamed: list[tuple[str, Callable[[], Opened]]] = [
            (
                DIRECT_STREAM,
                _keep_alive_contender(mock.url, MOCK_MODEL, {}, DIRECT_STREAM, stream=True),
            ),
            (MAINMAST_STREAM, stream),
            (
                LITELLM_STREAM,
                _keep_alive_contender(
                    litellm.url, BENCH_ROUTE, litellm.headers, LITELLM_STREAM, stream=True
                ),
            ),
        ]
        contenders: list[tuple[str, Callable[[], Opened]]] = [
            (DIRECT, _keep_alive_contender(mock.url, MOCK_MODEL, {}, DIRECT)),
            (DIRECT_HTTPX, _httpx_contender(mock.url, MOCK_MODEL, DIRECT_HTTPX)),
            (MAINMAST, complete),
            (MAINMAST_FLOOR, list_models),
            (LITELLM, _keep_alive_contender(litellm.url, BENCH_ROUTE, litellm.headers, LITELLM)),
        ]
        rows = []
        # Contenders take turns at each concurrency, so a drift of the machine's load
        # during the run touches all of them alike. HTTP connections are opened anew for
        # each row: an idle keep-alive connection may have been closed by the server.
        plan = [
            (name, opened, concurrency, CALLS[concurrency], WARM_UP_CALLS[concurrency])
            for concurrency in CONCURRENCIES
            for name, opened in contenders
        ]
        plan += [
            (name, opened, level, STREAM_CALLS[level], STREAM_WARM_UP_CALLS[level])
            for level in STREAM_CONCURRENCIES
            for name, opened in streamed
        ]
        for name, open_contender, concurrency, calls, warm_up_calls in plan:
            call, close = open_contender()
            try:
                rows.append(
                    await measure(
                        name,
                        call,
                        concurrency=concurrency,
                        calls=calls,
                        warm_up_calls=warm_up_calls,
                        watched=watched,
                    )
                )
            finally:
                await close()
    return rows


async def _run(
    folder: Path, litellm_bin: Path, netrun_bin: Path
) -> tuple[list[LoadRow], list[Scenario], str]:
    refusing = RefusingPort()
    started: list[Child] = []
    try:
        mock = await start_mock(folder)
        started.append(mock.child)
        print(f"mock provider at {mock.url}", flush=True)
        mainmast = await start_mainmast(folder, mock.url, refusing.url)
        started.extend(mainmast.children)
        print(f"mainmast-llm at {mainmast.address}; authentication: {mainmast.authentication}")
        litellm = await start_litellm(folder, litellm_bin, mock.url, refusing.url)
        started.append(litellm.child)
        print(f"LiteLLM {LITELLM_VERSION} at {litellm.url}", flush=True)
        print("Latency and throughput:", flush=True)
        rows = await _load_rows(mock, mainmast, litellm)
        print(f"Failure routes, {FAILOVER_CALLS} calls each, one after the other:", flush=True)
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            scenarios = await mainmast_scenarios(mainmast, mock, client, FAILOVER_CALLS)
            scenarios += await litellm_scenarios(litellm, mock, client, FAILOVER_CALLS)
            scenarios += await netrun_scenarios(
                netrun_bin,
                mock,
                client,
                refusing_url=refusing.url,
                count=FAILOVER_CALLS,
                log=folder / "netrun.log",
            )
        return rows, scenarios, mainmast.authentication
    finally:
        for child in reversed(started):
            await child.stop()
        refusing.close()


def _added(rows: list[LoadRow]) -> dict[tuple[str, int], tuple[float, float]]:
    """(added p50, added p99) in ms of every row over its direct row (see BASELINES) at
    its concurrency."""
    by_key = {(row.contender, row.concurrency): row for row in rows}
    added = {}
    for row in rows:
        direct = by_key[(BASELINES.get(row.contender, DIRECT), row.concurrency)]
        added[(row.contender, row.concurrency)] = (
            row.p50_ms - direct.p50_ms,
            row.p99_ms - direct.p99_ms,
        )
    return added


def _verdicts(rows: list[LoadRow]) -> list[dict[str, Any]]:
    """The issue's two targets at each concurrency."""
    added = _added(rows)
    by_key = {(row.contender, row.concurrency): row for row in rows}
    verdicts = []
    for concurrency in CONCURRENCIES:
        ours, theirs = added[(MAINMAST, concurrency)][0], added[(LITELLM, concurrency)][0]
        our_rate = by_key[(MAINMAST, concurrency)].per_second
        their_rate = by_key[(LITELLM, concurrency)].per_second
        verdicts.append(
            {
                "concurrency": concurrency,
                "mainmast_added_p50_ms": ours,
                "litellm_added_p50_ms": theirs,
                "added_p50_ratio": ours / theirs if theirs > 0 else float("inf"),
                "added_p50_met": theirs > 0 and ours <= ADDED_P50_RATIO_TARGET * theirs,
                "mainmast_per_second": our_rate,
                "litellm_per_second": their_rate,
                "throughput_met": our_rate > their_rate,
            }
        )
    return verdicts


def _cores(row: LoadRow, label: str) -> str:
    return f"{row.cpu_cores.get(label, 0.0):.2f}"


def _load_table(rows: list[LoadRow], labels: list[str]) -> str:
    added = _added(rows)
    lines = [
        "| contender | concurrency | p50 | p99 | added p50 | added p99 | calls/s | errors "
        f"| CPU cores: {' / '.join(labels)} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        added_p50, added_p99 = added[(row.contender, row.concurrency)]
        extra = (
            ("—", "—")
            if row.contender in (DIRECT, DIRECT_STREAM)
            else (f"{added_p50:+.2f} ms", f"{added_p99:+.2f} ms")
        )
        lines.append(
            f"| {row.contender} | {row.concurrency} | {row.p50_ms:.2f} ms | {row.p99_ms:.2f} ms "
            f"| {extra[0]} | {extra[1]} | {row.per_second:,.0f} | {row.errors} "
            f"| {' / '.join(_cores(row, label) for label in labels)} |"
        )
    return "\n".join(lines)


def _targets_table(verdicts: list[dict[str, Any]]) -> str:
    lines = [
        "| concurrency | added p50: mainmast / LiteLLM | ratio (target <= 0.20) | met "
        "| calls/s: mainmast / LiteLLM | met |",
        "| ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for v in verdicts:
        lines.append(
            f"| {v['concurrency']} | {v['mainmast_added_p50_ms']:.2f} ms / "
            f"{v['litellm_added_p50_ms']:.2f} ms | {v['added_p50_ratio']:.2f} "
            f"| {'met' if v['added_p50_met'] else 'MISSED'} "
            f"| {v['mainmast_per_second']:,.0f} / {v['litellm_per_second']:,.0f} "
            f"| {'met' if v['throughput_met'] else 'MISSED'} |"
        )
    return "\n".join(lines)


def _throughput_table(rows: list[LoadRow]) -> str:
    lines = ["| contender | most calls/s | at concurrency |", "| --- | ---: | ---: |"]
    for contender in dict.fromkeys(row.contender for row in rows):
        best = max((row for row in rows if row.contender == contender), key=lambda r: r.per_second)
        lines.append(f"| {contender} | {best.per_second:,.0f} | {best.concurrency} |")
    return "\n".join(lines)


def _failover_table(scenarios: list[Scenario]) -> str:
    lines = [
        "| route | contender | answered | first call | later calls, median | slowest "
        "| requests to the 503 model |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for route in ROUTE_TITLES:
        for scenario in (s for s in scenarios if s.route == route):
            requests = (
                "—"
                if scenario.failing_model_requests is None
                else str(scenario.failing_model_requests)
            )
            lines.append(
                f"| {ROUTE_TITLES[route]} | {scenario.contender} "
                f"| {scenario.answered} of {len(scenario.calls)} "
                f"| {scenario.first_seconds * 1000:,.1f} ms "
                f"| {scenario.later_median_seconds * 1000:,.1f} ms "
                f"| {scenario.slowest_seconds * 1000:,.1f} ms | {requests} |"
            )
    return "\n".join(lines)


def _failover_details(scenarios: list[Scenario]) -> str:
    lines = []
    for scenario in scenarios:
        first, last = scenario.calls[0], scenario.calls[-1]
        lines.append(f"- {ROUTE_TITLES[scenario.route]}, {scenario.contender}:")
        lines.append(f"  - call 1: {first.detail}")
        lines.append(f"  - call {len(scenario.calls)}: {last.detail}")
    return "\n".join(lines)


def main() -> None:
    """Build the contenders' environments, run everything, print the tables, save them."""
    litellm_bin = contender_environment("litellm", LITELLM_REQUIREMENTS, "litellm", LITELLM_VERSION)
    netrun_bin = contender_environment(
        "netrun-llm", (f"netrun-llm[openai]=={NETRUN_VERSION}",), "netrun-llm", NETRUN_VERSION
    )
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="mainmast-bench-llm-") as folder,
        # The load generator on the event loop the services run on (uvloop where installed).
        asyncio.Runner(loop_factory=event_loop_factory()) as runner,
    ):
        rows, scenarios, authentication = runner.run(_run(Path(folder), litellm_bin, netrun_bin))
    load_after = os.getloadavg()
    labels = list(rows[0].cpu_cores)
    verdicts = _verdicts(rows)
    tables = {
        "load": _load_table(rows, labels),
        "targets": _targets_table(verdicts),
        "throughput": _throughput_table(rows),
        "failover": _failover_table(scenarios),
    }
    print()
    print(tables["load"])
    print()
    print(tables["targets"])
    print()
    print(tables["throughput"])
    print()
    print(tables["failover"])
    print()
    print(_failover_details(scenarios))
    print(
        f"\nmainmast authentication: {authentication}; LiteLLM {LITELLM_VERSION}, netrun-llm "
        f"{NETRUN_VERSION}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    _save(
        rows=rows,
        scenarios=scenarios,
        verdicts=verdicts,
        tables=tables,
        authentication=authentication,
        load_average=(load_before, load_after),
    )


def _save(
    *,
    rows: list[LoadRow],
    scenarios: list[Scenario],
    verdicts: list[dict[str, Any]],
    tables: dict[str, str],
    authentication: str,
    load_average: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    added = _added(rows)
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": load_average[0],
            "load_average_after": load_average[1],
        },
        "versions": {"litellm": LITELLM_VERSION, "netrun-llm": NETRUN_VERSION},
        "mainmast_authentication": authentication,
        "calls": {str(level): CALLS[level] for level in CONCURRENCIES},
        "rows": [
            {
                "contender": row.contender,
                "concurrency": row.concurrency,
                "calls": row.calls,
                "errors": row.errors,
                "first_error": row.first_error,
                "seconds": row.seconds,
                "p50_ms": row.p50_ms,
                "p99_ms": row.p99_ms,
                "added_p50_ms": added[(row.contender, row.concurrency)][0],
                "added_p99_ms": added[(row.contender, row.concurrency)][1],
                "per_second": row.per_second,
                "cpu_cores": row.cpu_cores,
            }
            for row in rows
        ],
        "verdicts": verdicts,
        "failover": [scenario.as_json() for scenario in scenarios],
        "tables": tables,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nsaved {RESULTS.relative_to(REPOSITORY)}")
