"""The primary-down scenarios of the llm gateway benchmark, for the three contenders.

Each route of `_llm_gateways` (refusing primary, primary answering 503, everything down)
gets the same number of calls, one after the other, through each contender: mainmast over
gRPC, LiteLLM over HTTP, netrun-llm's fallback chain in its own environment
(`_llm_netrun_worker.py`). A call's record says whether it got an answer, how long it
took, and what the contender told about it (mainmast's attempts, LiteLLM's headers,
netrun-llm's metadata, or the error each raised). The mock counts the requests each
failing model got, which shows whether a contender stops calling a deployment that fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc.aio
import httpx

from bench._llm_gateways import (
    ALL_DOWN,
    DEAD_PRIMARY,
    FAILING_PRIMARY,
    UPSTREAM_KEY,
    LiteLLMGateway,
    MainmastGateway,
    MockProvider,
    unavailable_model,
)
from bench._llm_processes import REPOSITORY
from mainmast.errors import error_from_rpc_error
from mainmast.llm.v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2

ROUTES: Final = (DEAD_PRIMARY, FAILING_PRIMARY, ALL_DOWN)
ROUTE_TITLES: Final = {
    DEAD_PRIMARY: "primary refuses connections",
    FAILING_PRIMARY: "primary answers 503",
    ALL_DOWN: "every deployment down",
}
CALL_TIMEOUT_SECONDS: Final = 60.0
NETRUN_TIMEOUT_SECONDS: Final = 600.0
PROMPT: Final = "Say something short."
NETRUN_WORKER: Final = REPOSITORY / "bench" / "_llm_netrun_worker.py"

_OUTCOME_NAMES: Final = {
    number: name.removeprefix("OUTCOME_").lower()
    for name, number in resources_pb2.Attempt.Outcome.items()
}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call on a failure route."""

    ok: bool
    seconds: float
    detail: str


@dataclass(frozen=True, slots=True)
class Scenario:
    """N calls of one contender on one route."""

    route: str
    contender: str
    calls: list[CallRecord]
    failing_model_requests: int | None
    """Requests the mock got for the route's 503 model (None on routes without one)."""

    @property
    def answered(self) -> int:
        """Calls that got an answer."""
        return sum(call.ok for call in self.calls)

    @property
    def first_seconds(self) -> float:
        """The first call's time."""
        return self.calls[0].seconds

    @property
    def later_median_seconds(self) -> float:
        """The median time of every call after the first."""
        return statistics.median(call.seconds for call in self.calls[1:])

    @property
    def slowest_seconds(self) -> float:
        """The slowest call's time."""
        return max(call.seconds for call in self.calls)

    def as_json(self) -> dict[str, Any]:
        """The scenario for the results file."""
        return {
            "route": self.route,
            "contender": self.contender,
            "answered": self.answered,
            "calls": [{"ok": c.ok, "seconds": c.seconds, "detail": c.detail} for c in self.calls],
            "failing_model_requests": self.failing_model_requests,
        }


async def _sequence(
    call: Callable[[], Awaitable[tuple[bool, str]]], count: int
) -> list[CallRecord]:
    records = []
    for _ in range(count):
        started = time.perf_counter()
        ok, detail = await call()
        # Error messages may span lines; a record is one line of a table or list.
        records.append(CallRecord(ok, time.perf_counter() - started, " ".join(detail.split())))
    return records


def _failing_model(contender: str, route: str) -> str | None:
    return unavailable_model(contender, route) if route in (FAILING_PRIMARY, ALL_DOWN) else None


async def _counted(
    mock: MockProvider,
    client: httpx.AsyncClient,
    contender: str,
    route: str,
    run: Callable[[], Awaitable[list[CallRecord]]],
) -> Scenario:
    model = _failing_model(contender, route)
    before = (await mock.request_counts(client)).get(model or "", 0)
    records = await run()
    after = (await mock.request_counts(client)).get(model or "", 0)
    return Scenario(route, contender, records, None if model is None else after - before)


async def mainmast_scenarios(
    gateway: MainmastGateway, mock: MockProvider, client: httpx.AsyncClient, count: int
) -> list[Scenario]:
    """`count` Complete calls on each route, over one channel."""
    scenarios = []
    async with grpc.aio.insecure_channel(gateway.address) as channel:
        stub = llm_service_pb2_grpc.LlmServiceStub(channel)
        for route in ROUTES:
            request = llm_service_pb2.CompleteRequest(
                input=resources_pb2.CompletionInput(
                    model=route,
                    messages=[resources_pb2.Message(role=resources_pb2.ROLE_USER, content=PROMPT)],
                    max_tokens=32,
                )
            )

            async def call(request: Any = request) -> tuple[bool, str]:
                try:
                    response = await stub.Complete(
                        request, metadata=gateway.metadata, timeout=CALL_TIMEOUT_SECONDS
                    )
                except grpc.aio.AioRpcError as exc:
                    error = error_from_rpc_error(exc)
                    return False, (
                        f"raised {type(error).__name__} ({exc.code().name}, reason "
                        f"{error.reason}): {error.message}"
                    )[:400]
                attempts = ", ".join(
                    f"{a.deployment}:{_OUTCOME_NAMES.get(a.outcome, a.outcome)}"
                    for a in response.completion.attempts
                )
                return True, f"attempts: {attempts}"

            scenarios.append(
                await _counted(
                    mock, client, "mainmast", route, lambda call=call: _sequence(call, count)
                )
            )
    return scenarios


async def litellm_scenarios(
    gateway: LiteLLMGateway, mock: MockProvider, client: httpx.AsyncClient, count: int
) -> list[Scenario]:
    """`count` /v1/chat/completions calls on each route."""
    scenarios = []
    for route in ROUTES:
        body = {
            "model": route,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 32,
        }

        async def call(body: Any = body) -> tuple[bool, str]:
            try:
                response = await client.post(
                    f"{gateway.url}/v1/chat/completions",
                    json=body,
                    headers=gateway.headers,
                    timeout=CALL_TIMEOUT_SECONDS,
                )
            except httpx.HTTPError as exc:
                return False, f"raised {type(exc).__name__}: {exc}"[:400]
            said = ", ".join(
                f"{name.removeprefix('x-litellm-')}={value}"
                for name, value in response.headers.items()
                if name in ("x-litellm-attempted-fallbacks", "x-litellm-attempted-retries")
            )
            if response.is_success:
                return True, f"answered by {response.json().get('model')}; {said}"
            return False, f"HTTP {response.status_code}: {_error_message(response)}; {said}"[:400]

        scenarios.append(
            await _counted(mock, client, "litellm", route, lambda call=call: _sequence(call, count))
        )
    return scenarios


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return response.text[:200]
    return str(error.get("message", error) if isinstance(error, dict) else error)[:300]


async def netrun_scenarios(
    bin_folder: Path,
    mock: MockProvider,
    client: httpx.AsyncClient,
    *,
    refusing_url: str,
    count: int,
    log: Path,
) -> list[Scenario]:
    """`count` calls on each route through netrun-llm's LLMFallbackChain (its worker)."""
    before = await mock.request_counts(client)
    with log.open("wb") as stderr:
        worker = await asyncio.create_subprocess_exec(
            os.fspath(bin_folder / "python"),
            "-P",
            os.fspath(NETRUN_WORKER),
            mock.url,
            refusing_url,
            str(count),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={
                **os.environ,
                "OPENAI_BASE_URL": f"{mock.url}/v1",
                "OPENAI_API_KEY": UPSTREAM_KEY,
                "NO_PROXY": "127.0.0.1,localhost",
            },
            start_new_session=True,
        )
        try:
            output, _ = await asyncio.wait_for(worker.communicate(), NETRUN_TIMEOUT_SECONDS)
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    if worker.returncode != 0:
        raise RuntimeError(f"the netrun-llm worker failed ({worker.returncode}); see {log}")
    report = json.loads(output.decode().strip().splitlines()[-1])
    after = await mock.request_counts(client)
    scenarios = []
    for route in ROUTES:
        model = _failing_model("netrun", route)
        records = [
            CallRecord(bool(c["ok"]), float(c["seconds"]), str(c["detail"])) for c in report[route]
        ]
        requests = None if model is None else after.get(model, 0) - before.get(model, 0)
        scenarios.append(Scenario(route, "netrun", records, requests))
    return scenarios
