"""The servers of the llm gateway benchmark: the mock provider, the two gateways, and the
auth service whose tokens mainmast's gateway verifies.

Each runs in a process of its own (see `_llm_processes`); both gateways get the same routes:

| route | deployments, in order |
| --- | --- |
| `bench` | the mock, model `gpt-4o-mini` |
| `dead-primary` | a port that refuses connections, then the mock |
| `failing-primary` | the mock with a model it answers 503 for, then the mock |
| `all-down` | the refusing port, then the 503 model |

mainmast routes are aliases of one routing file; LiteLLM's are model groups of one
deployment each, chained by its `fallbacks` setting, as its documentation does it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from bench._llm_processes import REPOSITORY, Child, free_port, spawn, wait_until
from mainmast.auth import AuthClient, AuthClientConfig
from mainmast.db import DatabasePool
from mainmast_auth._store_migrations import migrate_database as migrate_auth_database
from mainmast_auth.testing import seed_tenant

MOCK_MODEL: Final = "gpt-4o-mini"
"""The model every working deployment asks the mock for: one LiteLLM has a price for, as a
real deployment would (an unpriced model sends LiteLLM down a diagnostic path on every call)."""
BENCH_ROUTE: Final = "bench"
DEAD_PRIMARY: Final = "dead-primary"
FAILING_PRIMARY: Final = "failing-primary"
ALL_DOWN: Final = "all-down"
UNAVAILABLE_PREFIX: Final = "unavailable"
"""The mock answers 503 to every model whose name starts with this."""

UPSTREAM_KEY_VARIABLE: Final = "BENCH_MOCK_PROVIDER_KEY"
UPSTREAM_KEY: Final = "sk-bench-mock-provider-not-a-real-key"
LITELLM_MASTER_KEY: Final = "sk-bench-litellm-master-not-a-real-key"

START_TIMEOUT_SECONDS: Final = 180.0

TENANT: Final = "tenants/bench"
USERNAME: Final = "bench-caller"
PASSWORD: Final = "a long benchmark password, not a real one"

MOCK_SCRIPT: Final = REPOSITORY / "bench" / "_llm_mock.py"


def unavailable_model(contender: str, route: str) -> str:
    """The model name the mock fails for `contender` on `route` (counted apart from others)."""
    return f"{UNAVAILABLE_PREFIX}-{contender}-{route}"


@dataclass(frozen=True, slots=True)
class MockProvider:
    """The running mock provider."""

    child: Child
    url: str
    """Its base URL, `http://127.0.0.1:PORT`."""

    async def request_counts(self, client: httpx.AsyncClient) -> dict[str, int]:
        """How many chat or generate requests each model name has had."""
        response = await client.get(f"{self.url}/bench/requests")
        response.raise_for_status()
        return {str(model): int(count) for model, count in response.json().items()}


async def start_mock(folder: Path) -> MockProvider:
    """The mock provider (`bench/_llm_mock.py`) in its own process, once it listens."""
    log = folder / "mock.log"
    child = await spawn(
        "mock provider",
        # -P: bench/logging.py must not shadow the standard library's logging.
        [sys.executable, "-P", os.fspath(MOCK_SCRIPT)],
        log=log,
        stdin_pipe=True,
    )
    port: list[int] = []

    async def listening() -> bool:
        first_line = log.read_text().partition("\n")[0]
        if first_line.startswith("{"):
            port.append(int(json.loads(first_line)["port"]))
            return True
        return False

    await wait_until(child, listening, what="listening", timeout_seconds=30, interval=0.05)
    return MockProvider(child, f"http://127.0.0.1:{port[0]}")


@dataclass(frozen=True, slots=True)
class MainmastGateway:
    """The running `mainmast-llm serve` (and the auth service it trusts), and what each
    call must carry."""

    children: tuple[Child, ...]
    """Its process and, when callers authenticate, the auth service's (stop them all)."""
    address: str
    """HOST:PORT of its gRPC server."""
    metadata: tuple[tuple[str, str], ...]
    """gRPC metadata for every call: the bearer token, when callers authenticate."""
    authentication: str
    """Which authentication was in force, said in the results."""

    @property
    def child(self) -> Child:
        """The llm service's process."""
        return self.children[-1]


def mainmast_routing(mock_url: str, dead_url: str) -> dict[str, Any]:
    """The routing file of the mainmast gateway (deployment defaults left as they are)."""
    key = {"env": UPSTREAM_KEY_VARIABLE}

    def deployment(name: str, base_url: str, model: str = MOCK_MODEL) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai",
            "model": model,
            "base_url": f"{base_url}/v1",
            "key": key,
        }

    def failing(route: str) -> str:
        return unavailable_model("mainmast", route)

    return {
        "models": {
            BENCH_ROUTE: {"deployments": [deployment("mock", mock_url)]},
            DEAD_PRIMARY: {
                "deployments": [
                    deployment(DEAD_PRIMARY, dead_url),
                    deployment(f"{DEAD_PRIMARY}-fallback", mock_url),
                ]
            },
            FAILING_PRIMARY: {
                "deployments": [
                    deployment(FAILING_PRIMARY, mock_url, failing(FAILING_PRIMARY)),
                    deployment(f"{FAILING_PRIMARY}-fallback", mock_url),
                ]
            },
            ALL_DOWN: {
                "deployments": [
                    deployment(f"{ALL_DOWN}-refusing", dead_url),
                    deployment(f"{ALL_DOWN}-failing", mock_url, failing(ALL_DOWN)),
                ]
            },
        }
    }


def _serve_command(program: str) -> list[str]:
    """`<program> serve` of the workspace on a free loopback port, without /metrics."""
    executable = os.fspath(Path(sys.executable).with_name(program))
    return [executable, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""]


async def _serving_address(child: Child, *, after: str = "") -> str:
    """The address of a mainmast service's "serving" log line (JSON lines), once written;
    with `after`, once a line with that event was written too."""
    found: dict[str, str] = {}

    async def serving() -> bool:
        for line in child.log.read_text().splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            found.setdefault(str(event.get("event")), str(event.get("address")))
        return "serving" in found and (not after or after in found)

    await wait_until(
        child, serving, what=f"serving ({after or 'ready'})", timeout_seconds=START_TIMEOUT_SECONDS
    )
    return found["serving"]


async def _seed_auth(database_url: str) -> None:
    """The auth service's database, migrated, with the benchmark's tenant and user (an
    owner, who holds `llm:complete` through `*:*`)."""
    await migrate_auth_database(database_url)
    pool = DatabasePool(database_url, pool_size=1, max_overflow=0)
    try:
        await seed_tenant(pool, TENANT, USERNAME, password=PASSWORD, role="owner")
    finally:
        await pool.close()


async def start_auth(folder: Path) -> tuple[Child, str, str]:
    """`mainmast-auth serve` on a free loopback port with a seeded SQLite database; its
    process, its address and an access token of the benchmark's user."""
    data = folder / "auth"
    data.mkdir()
    database_url = f"sqlite+aiosqlite:///{data / 'auth.db'}"
    await _seed_auth(database_url)
    child = await spawn(
        "mainmast-auth",
        _serve_command("mainmast-auth"),
        log=folder / "mainmast-auth.log",
        env={
            "MAINMAST_DATA_DIR": os.fspath(data),
            "MAINMAST_AUTH_DATABASE_URL": database_url,
            "MAINMAST_AUTH_LOG_JSON": "true",
            # Longer than the whole run, so the one token serves every call.
            "MAINMAST_AUTH_ACCESS_TOKEN_LIFETIME_SECONDS": "7200",
        },
    )
    try:
        address = await _serving_address(child)
        async with AuthClient(config=AuthClientConfig(target=address)) as client:
            token = (await client.login(TENANT, USERNAME, PASSWORD)).access_token
    except BaseException:
        await child.stop()
        raise
    return child, address, token


async def start_mainmast(
    folder: Path, mock_url: str, dead_url: str, *, authenticated: bool = True
) -> MainmastGateway:
    """`mainmast-llm serve` on a free loopback port, routing to the mock; once it serves.

    This is the one place that decides how the gateway is started and how calls
    authenticate. `authenticated` (the default, and the service's own default): the auth
    service runs too (`start_auth`), the llm service verifies every call's access token
    locally from its JWKS and asks it (through the client's 5 s decision cache) whether
    the caller holds `llm:complete`, and every call carries the token. Without it, the
    llm service runs with `auth_required=false` and every caller is its dev principal.
    """
    routing = folder / "mainmast-routing.yaml"
    routing.write_text(yaml.safe_dump(mainmast_routing(mock_url, dead_url), sort_keys=False))
    auth_children: tuple[Child, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    env = {
        "MAINMAST_DATA_DIR": os.fspath(folder),
        "MAINMAST_LLM_ROUTING_FILE": os.fspath(routing),
        "MAINMAST_LLM_LOG_JSON": "true",
        "MAINMAST_LLM_HTTP_TRUST_ENV": "false",
        UPSTREAM_KEY_VARIABLE: UPSTREAM_KEY,
    }
    if authenticated:
        auth_child, auth_address, token = await start_auth(folder)
        auth_children = (auth_child,)
        metadata = (("authorization", f"Bearer {token}"),)
        env["MAINMAST_LLM_AUTH_TARGET"] = auth_address
        authentication = (
            "mainmast access token on every call, verified locally (EdDSA, JWKS of the auth "
            "service), permission llm:complete through the auth client's 5 s decision cache"
        )
    else:
        env["MAINMAST_LLM_AUTH_REQUIRED"] = "false"
        authentication = "none: auth_required=false, every caller is the dev principal"
    try:
        child = await spawn(
            "mainmast-llm",
            _serve_command("mainmast-llm"),
            log=folder / "mainmast-llm.log",
            env=env,
        )
        # With callers authenticated, ready means the auth service's keys have arrived.
        address = await _serving_address(child, after="auth.keys_ready" if authenticated else "")
    except BaseException:
        for auth_child in auth_children:
            await auth_child.stop()
        raise
    return MainmastGateway((*auth_children, child), address, metadata, authentication)


@dataclass(frozen=True, slots=True)
class LiteLLMGateway:
    """The running LiteLLM proxy."""

    child: Child
    url: str
    """Its base URL, `http://127.0.0.1:PORT`."""
    headers: dict[str, str]
    """Headers of every call (its master key)."""


def litellm_config(mock_url: str, dead_url: str) -> dict[str, Any]:
    """The LiteLLM proxy's config: the same routes, fallbacks in `router_settings`."""

    def group(name: str, base_url: str, model: str = MOCK_MODEL) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{model}",
                "api_base": f"{base_url}/v1",
                "api_key": UPSTREAM_KEY,
            },
        }

    def failing(route: str) -> str:
        return unavailable_model("litellm", route)

    return {
        "model_list": [
            group(BENCH_ROUTE, mock_url),
            group(DEAD_PRIMARY, dead_url),
            group(f"{DEAD_PRIMARY}-fallback", mock_url),
            group(FAILING_PRIMARY, mock_url, failing(FAILING_PRIMARY)),
            group(f"{FAILING_PRIMARY}-fallback", mock_url),
            group(ALL_DOWN, dead_url),
            group(f"{ALL_DOWN}-failing", mock_url, failing(ALL_DOWN)),
        ],
        "router_settings": {
            "fallbacks": [
                {DEAD_PRIMARY: [f"{DEAD_PRIMARY}-fallback"]},
                {FAILING_PRIMARY: [f"{FAILING_PRIMARY}-fallback"]},
                {ALL_DOWN: [f"{ALL_DOWN}-failing"]},
            ]
        },
        "litellm_settings": {"set_verbose": False},
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }


async def start_litellm(
    folder: Path, bin_folder: Path, mock_url: str, dead_url: str
) -> LiteLLMGateway:
    """`litellm --config` on a free loopback port, no database; once /health/readiness says
    healthy."""
    config = folder / "litellm-config.yaml"
    config.write_text(yaml.safe_dump(litellm_config(mock_url, dead_url), sort_keys=False))
    port = free_port()
    child = await spawn(
        "LiteLLM proxy",
        [
            os.fspath(bin_folder / "litellm"),
            "--config",
            os.fspath(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        log=folder / "litellm.log",
        cwd=folder,
        env={
            # No network at start (its price map ships with it), no telemetry, quiet logs.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY_DISABLED": "true",
            "LITELLM_LOG": "ERROR",
            "NO_PROXY": "127.0.0.1,localhost",
        },
    )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:

        async def ready() -> bool:
            try:
                response = await client.get(f"{url}/health/readiness")
            except httpx.TransportError:
                return False  # not listening yet
            return response.status_code == 200 and response.json().get("status") == "healthy"

        await wait_until(child, ready, what="ready", timeout_seconds=START_TIMEOUT_SECONDS)
    return LiteLLMGateway(child, url, {"authorization": f"Bearer {LITELLM_MASTER_KEY}"})
