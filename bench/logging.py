"""Logging throughput with redaction on: mainmast against what users would pick instead.

`uv run --all-packages python -m bench logging` logs the SAME 100k events (plain lines, nested
dicts and lists carrying passwords, tokens and DSNs, registered secrets inside message text)
with each contender, every one writing JSON lines to a file and flushing each line:

- mainmast.logging (structlog underneath, redaction at any depth, orjson);
- the standard library's logging with python-json-logger's JsonFormatter and a redaction
  Filter that walks nested values (key set, Bearer, URL passwords, registered secrets);
- plain structlog with JSONRenderer, in its recommended fast setup; it does not redact;
- netrun-logging 2.0.0 as its README shows it, in its own virtual environment
  (bench/.venvs/netrun-logging, made here with `uv venv` and `uv pip install`).

Each (contender, repetition) runs in a fresh interpreter (`bench/_logging_worker.py`), which
builds the events before timing and times only the logging loop. Repetitions are interleaved
and the best of 3 counts. Every output is then searched for the secret values it should hide
("leaks") and checked for innocent values it should not have hidden (`max_tokens`,
`prompt_tokens`, `author`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

EVENTS = 100_000
REPETITIONS = 3
TARGET_RATIO = 2.0
NETRUN_VERSION = "2.0.0"

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
WORKER = HERE / "_logging_worker.py"
NETRUN_VENV = HERE / ".venvs" / "netrun-logging"
RESULTS = HERE / "results" / "logging.json"

LEAK_MARKER = "LEAK"  # the worker puts it in every secret value
INNOCENT_VALUES = {"max_tokens": 256, "prompt_tokens": 31, "author": "alice"}


@dataclass(frozen=True)
class Contender:
    """One logging setup, run with one interpreter."""

    name: str
    label: str
    python: Path


@dataclass
class Outcome:
    """What the runs of one contender showed."""

    best_seconds: float
    lines: int
    leaks: int
    innocent_masked: int


def main() -> None:
    """Run every contender REPETITIONS times, interleaved, and print the table."""
    uv = _uv()
    netrun_python = _netrun_environment(uv)
    contenders = [
        Contender("mainmast", "mainmast.logging", Path(sys.executable)),
        Contender("stdlib", "stdlib logging + python-json-logger + filter", netrun_python),
        Contender("structlog", "structlog JSONRenderer (no redaction)", Path(sys.executable)),
        Contender("netrun", f"netrun-logging {NETRUN_VERSION}", netrun_python),
    ]
    secrets_in_events = _secrets_in_events(EVENTS)
    print(f"{EVENTS} events, {secrets_in_events} secret values in them, best of {REPETITIONS}")
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="mainmast-bench-logging-") as scratch:
        for repetition in range(REPETITIONS):
            for contender in contenders:
                sink = Path(scratch) / f"{contender.name}-{repetition}.jsonl"
                seconds = _run(contender, sink)
                lines, leaks, innocent_masked = _inspect(sink)
                sink.unlink()
                print(
                    f"  run {repetition + 1} {contender.name:<10} {EVENTS / seconds:>10,.0f} ev/s"
                )
                previous = outcomes.get(contender.name)
                best = seconds if previous is None else min(seconds, previous.best_seconds)
                outcomes[contender.name] = Outcome(best, lines, leaks, innocent_masked)
    table = _table(contenders, outcomes, secrets_in_events)
    print()
    print(table)
    ratio = outcomes["stdlib"].best_seconds / outcomes["mainmast"].best_seconds
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\ntarget: mainmast >= {TARGET_RATIO}x the stdlib JSON baseline: {verdict} ({ratio:.2f}x)"
    )
    _save(contenders, outcomes, secrets_in_events, table)


def _uv() -> str:
    # `uv run` names itself in UV; otherwise use the uv on the PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        raise SystemExit("the logging benchmark needs uv to build netrun-logging's environment")
    return uv


def _netrun_environment(uv: str) -> Path:
    """bench/.venvs/netrun-logging with netrun-logging installed, made once and reused."""
    python = NETRUN_VENV / "bin" / "python"
    if _installed_version(python, "netrun-logging") != NETRUN_VERSION:
        print(
            f"installing netrun-logging {NETRUN_VERSION} into {NETRUN_VENV.relative_to(REPOSITORY)}"
        )
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        subprocess.run([uv, "venv", "--quiet", "--python", version, str(NETRUN_VENV)], check=True)
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python),
             f"netrun-logging=={NETRUN_VERSION}"],
            check=True,
        )  # fmt: skip
    return python


def _installed_version(python: Path, distribution: str) -> str | None:
    if not python.exists():
        return None
    found = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({distribution!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def _run(contender: Contender, sink: Path) -> float:
    """Seconds the contender spent logging the events, measured inside its own process."""
    completed = subprocess.run(
        # -P keeps bench/ off sys.path: bench/logging.py would shadow the stdlib's logging.
        [str(contender.python), "-P", str(WORKER), contender.name, str(sink), str(EVENTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPOSITORY,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{contender.name} failed:\n{completed.stderr}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return float(result["seconds"])


def _inspect(sink: Path) -> tuple[int, int, int]:
    """(lines written, secret values found, innocent values that were masked)."""
    text = sink.read_text(encoding="utf-8")
    leaks = text.count(LEAK_MARKER)
    lines = text.splitlines()
    innocent_masked = 0
    for line in lines:
        if '"max_tokens"' not in line:
            continue
        record = json.loads(line)
        innocent_masked += sum(
            1 for key, value in INNOCENT_VALUES.items() if record.get(key) != value
        )
    return len(lines), leaks, innocent_masked


def _secrets_in_events(count: int) -> int:
    # Per four events: none, three (password, api_key, Bearer token), four (two URL
    # passwords, client_secret, refresh_token), one (a registered secret in the message).
    per_kind = (0, 3, 4, 1)
    return sum(per_kind[index % 4] for index in range(count))


def _table(contenders: list[Contender], outcomes: dict[str, Outcome], secrets: int) -> str:
    baseline = outcomes["stdlib"].best_seconds
    rows = [
        "| contender | events/s | vs stdlib | leaks | innocent masked | lines |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for contender in contenders:
        outcome = outcomes[contender.name]
        rows.append(
            f"| {contender.label} | {EVENTS / outcome.best_seconds:,.0f} "
            f"| {baseline / outcome.best_seconds:.2f}x | {outcome.leaks:,} of {secrets:,} "
            f"| {outcome.innocent_masked:,} | {outcome.lines:,} |"
        )
    return "\n".join(rows)


def _save(
    contenders: list[Contender], outcomes: dict[str, Outcome], secrets: int, table: str
) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "events": EVENTS,
        "repetitions": REPETITIONS,
        "secrets_in_events": secrets,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "contenders": {
            contender.name: {
                "label": contender.label,
                "events_per_second": EVENTS / outcomes[contender.name].best_seconds,
                "leaks": outcomes[contender.name].leaks,
                "innocent_masked": outcomes[contender.name].innocent_masked,
                "lines": outcomes[contender.name].lines,
            }
            for contender in contenders
        },
        "table": table,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nsaved {RESULTS.relative_to(REPOSITORY)}")
