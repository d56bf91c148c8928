"""netrun-llm's fallback chain on the benchmark's failure routes, in netrun-llm's own environment.

Usage: python -P bench/_llm_netrun_worker.py MOCK_URL REFUSING_URL CALLS

`bench/llm_gateway.py` starts it with the interpreter of bench/.venvs/netrun-llm and the
environment variables netrun-llm's OpenAI adapter reads (OPENAI_API_KEY, and
OPENAI_BASE_URL, which the openai client it builds reads in turn). It makes CALLS calls,
one after the other, through an `LLMFallbackChain` on each route and prints one JSON
object: for each route, every call's outcome, seconds and what the chain said.

netrun-llm 2.0.0's adapters and what they let a caller point at a local server:

- `OpenAIAdapter(api_key=, default_model=, max_tokens=, timeout=)` has no base URL; the
  `openai.OpenAI` client it builds reads `OPENAI_BASE_URL` from the environment, so every
  OpenAI adapter of a process talks to one endpoint. A primary and a fallback at two
  addresses cannot both be OpenAI adapters; they can be two models on one endpoint.
- `OllamaAdapter(host=, model=, timeout=, fallback_hosts=)` takes a host, and appends
  `OLLAMA_HOST` and the hard-coded `http://localhost:11434` to its hosts; before every call
  the chain asks `check_availability()`, which GETs `/api/tags` of each host (twice for
  the host that answers) until one lists the model.

So the routes are built as close to the gateways' as netrun-llm allows:

- `dead-primary`: an Ollama adapter at the refusing port, then one at the mock;
- `failing-primary`: an OpenAI adapter for a model the mock answers 503 for, then one for
  the mock's model (both at OPENAI_BASE_URL, the mock);
- `all-down`: an Ollama adapter at the refusing port, then an OpenAI adapter for another
  503 model.

It imports only the standard library and netrun at the top; `-P` keeps `bench/` off
`sys.path`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from netrun.llm import LLMFallbackChain, OllamaAdapter, OpenAIAdapter

PROMPT = "Say something short."
OLLAMA_MODEL = "bench-model"
OPENAI_MODEL = "gpt-4o-mini"


def _unavailable(route: str) -> str:
    # The same naming as bench/_llm_gateways.py's unavailable_model("netrun", route).
    return f"unavailable-netrun-{route}"


def _chains(mock_url: str, refusing_url: str) -> dict[str, LLMFallbackChain]:
    return {
        "dead-primary": LLMFallbackChain(
            adapters=[
                OllamaAdapter(host=refusing_url, model=OLLAMA_MODEL),
                OllamaAdapter(host=mock_url, model=OLLAMA_MODEL),
            ]
        ),
        "failing-primary": LLMFallbackChain(
            adapters=[
                OpenAIAdapter(default_model=_unavailable("failing-primary")),
                OpenAIAdapter(default_model=OPENAI_MODEL),
            ]
        ),
        "all-down": LLMFallbackChain(
            adapters=[
                OllamaAdapter(host=refusing_url, model=OLLAMA_MODEL),
                OpenAIAdapter(default_model=_unavailable("all-down")),
            ]
        ),
    }


def _call(chain: LLMFallbackChain) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = chain.execute(PROMPT, {"max_tokens": 32})
    except Exception as exc:  # noqa: BLE001 -- what it raises is the finding
        return {
            "ok": False,
            "seconds": time.perf_counter() - started,
            "detail": f"raised {type(exc).__name__}: {exc}"[:400],
        }
    failed = response.metadata.get("failed_adapters", [])
    return {
        "ok": True,
        "seconds": time.perf_counter() - started,
        "detail": (
            f"answered by {response.adapter_name} ({response.model_used}); "
            f"fallback_attempts={response.metadata.get('fallback_attempts', 0)}, "
            f"failed_adapters={failed}"
        ),
    }


def main() -> None:
    """Run every route's calls and print the JSON report."""
    mock_url, refusing_url, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    report = {
        route: [_call(chain) for _ in range(calls)]
        for route, chain in _chains(mock_url, refusing_url).items()
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
