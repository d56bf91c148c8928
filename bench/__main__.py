"""Run every benchmark, or the ones named: `python -m bench [name ...]`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _benchmark_names() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(here)])
        if not info.name.startswith("_") and not info.ispkg
    )


def main(argv: list[str]) -> None:
    """Run the named benchmarks in order (all of them when none are named)."""
    names = argv or _benchmark_names()
    unknown = sorted(set(names) - set(_benchmark_names()))
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; have {_benchmark_names()}")
    for name in names:
        print(f"\n=== bench/{name}.py ===", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
