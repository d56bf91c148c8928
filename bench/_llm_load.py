"""The load generator of the llm gateway benchmark: N calls at concurrency C, timed one by one.

`concurrency` tasks (workers, numbered from 0) share one counter of calls still to make and
call back to back until it is spent, after a warm-up run the same way; each call is told
its worker's number, so a client can keep one connection per worker. Every call's latency
counts; a call that fails is counted apart (and its first error kept), never timed. While
the measured calls run, the CPU time of this process and of every watched process group is
taken, so each row tells which process was busy: a load generator near one whole core
would be the limit of the row, not the gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bench._llm_processes import Child, own_cpu_seconds

LOAD_GENERATOR: str = "load generator"
"""The label of this process in a row's CPU figures."""


@dataclass(frozen=True, slots=True)
class LoadRow:
    """One contender at one concurrency."""

    contender: str
    concurrency: int
    calls: int
    """Calls that succeeded and were timed."""
    errors: int
    seconds: float
    """Wall time of the measured calls."""
    p50_ms: float
    p99_ms: float
    cpu_cores: dict[str, float] = field(default_factory=dict)
    """CPU seconds per wall second of each process group during the measured calls."""
    first_error: str = ""

    @property
    def per_second(self) -> float:
        """Successful calls per second of wall time."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_samples: Sequence[float], fraction: float) -> float:
    """The sample at `fraction` of the sorted samples (nearest rank, no interpolation)."""
    if not sorted_samples:
        return float("nan")
    return sorted_samples[min(len(sorted_samples) - 1, int(fraction * len(sorted_samples)))]


async def _run(
    call: Callable[[int], Awaitable[object]], concurrency: int, count: int
) -> tuple[list[float], list[BaseException]]:
    remaining = count
    latencies: list[float] = []
    errors: list[BaseException] = []
    clock = time.perf_counter

    async def worker(number: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = clock()
            try:
                await call(number)
            except Exception as exc:  # noqa: BLE001 -- a failed call is counted, not fatal
                errors.append(exc)
                continue
            latencies.append(clock() - started)

    await asyncio.gather(*(worker(number) for number in range(concurrency)))
    return latencies, errors


async def measure(
    contender: str,
    call: Callable[[int], Awaitable[object]],
    *,
    concurrency: int,
    calls: int,
    warm_up_calls: int,
    watched: Sequence[Child],
) -> LoadRow:
    """Warm up, then time `calls` calls at `concurrency`; see the module docstring."""
    await _run(call, concurrency, warm_up_calls)
    cpu_before = {child.label: child.cpu_seconds() for child in watched}
    own_before = own_cpu_seconds()
    started = time.perf_counter()
    latencies, errors = await _run(call, concurrency, calls)
    elapsed = time.perf_counter() - started
    cores = {LOAD_GENERATOR: (own_cpu_seconds() - own_before) / elapsed}
    for child in watched:
        cores[child.label] = (child.cpu_seconds() - cpu_before[child.label]) / elapsed
    latencies.sort()
    row = LoadRow(
        contender=contender,
        concurrency=concurrency,
        calls=len(latencies),
        errors=len(errors),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_cores=cores,
        first_error=f"{type(errors[0]).__name__}: {errors[0]}"[:300] if errors else "",
    )
    busy = ", ".join(f"{label} {value:.2f}" for label, value in cores.items())
    print(
        f"  {contender:<34} x{concurrency:<3} p50 {row.p50_ms:7.2f} ms  p99 {row.p99_ms:7.2f} ms"
        f"  {row.per_second:7,.0f}/s  errors {row.errors}  cores: {busy}",
        flush=True,
    )
    return row
