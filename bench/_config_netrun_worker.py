"""netrun-config's Key Vault client on the local vault, in netrun-config's own environment.

Usage: python -P bench/_config_netrun_worker.py VAULT_URL FAR_VAULT_URL

`bench/config_grpc.py` starts it with the interpreter of bench/.venvs/netrun-config, with
`REQUESTS_CA_BUNDLE` naming the local vault's certificate authority (the sync Azure SDK
that netrun-config uses sends its requests through `requests`, which reads it) and
`BENCH_VAULT_TOKEN` holding the token the local vault accepts. It prints one JSON line
`{"versions": {...}}`, then answers one JSON line for each command line on its standard
input (`{"op": ..., ...}`, see `_handle`), until that closes.

netrun-config 2.0.0 has two Key Vault clients with the same cache (`SecretCache`: a dict
of entries with an expiry time, no lock, no single-flight): `KeyVaultMixin` for settings
classes, which always builds its own DefaultAzureCredential, and `MultiVaultClient`, which
takes a credential per vault (`VaultConfig(url=, credential=, cache_config=)`). This uses
the latter, with three vaults on the one local vault: `default` with netrun's default
cache (8 h TTL), `short-ttl` with a 1 s TTL, for reads of an entry that has expired, and
`far`, with the default cache, through the vault's latency proxy (FAR_VAULT_URL).

What it cannot do as shipped: `MultiVaultClient` builds `SecretClient(vault_url=...,
credential=...)` and passes nothing else, so `verify_challenge_resource` stays on, and the
Key Vault SDK then refuses any vault whose host name does not end in the domain of the
challenge's resource (`vault.azure.net`): a vault on 127.0.0.1 cannot pass. Here the name
`SecretClient` in `netrun.config.multi_vault` is replaced, before the client is built, by
the same class with `verify_challenge_resource=False` bound: the one keyword any client of
a loopback vault needs (the service's own backend and the direct SDK rows set it too).
netrun-config's code runs unchanged otherwise.

It imports only the standard library, netrun and the Azure SDK; `-P` keeps `bench/`
(whose `logging.py` would shadow the standard library's) off `sys.path`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient
from netrun.config import MultiVaultClient, SecretCacheConfig, VaultConfig, multi_vault

SHORT_TTL_SECONDS = 1
WARM_UP_SECONDS = 0.5


class LocalVaultCredential:
    """A sync Azure credential that hands out the local vault's token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **options: Any) -> AccessToken:
        """A token valid for an hour."""
        return AccessToken(self._token, int(time.time()) + 3600)


def _client(url: str, far_url: str, token: str) -> MultiVaultClient:
    # See the module docstring: the one keyword a loopback vault needs.
    multi_vault.SecretClient = functools.partial(  # type: ignore[misc]
        SecretClient, verify_challenge_resource=False
    )
    credential = LocalVaultCredential(token)
    return MultiVaultClient(
        {
            "default": VaultConfig(url=url, credential=credential),
            "short-ttl": VaultConfig(
                url=url,
                credential=credential,
                cache_config=SecretCacheConfig(default_ttl_seconds=SHORT_TTL_SECONDS),
            ),
            "far": VaultConfig(url=far_url, credential=credential),
        }
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _timed(read: Any, seconds: float) -> dict[str, float]:
    """Call `read` back to back for `seconds` after a warm-up; every call's latency."""
    clock = time.perf_counter
    stop_at = clock() + WARM_UP_SECONDS
    while clock() < stop_at:
        read()
    samples: list[float] = []
    started = clock()
    stop_at = started + seconds
    while clock() < stop_at:
        before = clock()
        read()
        samples.append(clock() - before)
    elapsed = clock() - started
    samples.sort()
    return {
        "calls": len(samples),
        "seconds": elapsed,
        "p50_ms": _percentile(samples, 0.50) * 1000,
        "p99_ms": _percentile(samples, 0.99) * 1000,
    }


def _concurrent_reads(
    client: MultiVaultClient, name: str, vault: str, threads: int, reads: int
) -> dict[str, float]:
    """`reads` reads of `name` on a pool of `threads` threads, all held until every thread
    of the pool has its first read in hand, then released at once."""
    go = threading.Event()
    started = [0.0]

    def read() -> str | None:
        go.wait()
        return client.get_secret(name, vault=vault)

    outcomes: list[str | None] = []
    errors = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(read) for _ in range(reads)]
        started[0] = time.perf_counter()
        go.set()
        for future in futures:
            try:
                outcomes.append(future.result())
            except Exception:  # noqa: BLE001 -- counted: netrun-config should return None instead
                errors += 1
    return {
        "reads": reads,
        "none": sum(outcome is None for outcome in outcomes),
        "exceptions": errors,
        "seconds": time.perf_counter() - started[0],
    }


def _handle(client: MultiVaultClient, command: dict[str, Any]) -> dict[str, Any]:
    name = command.get("name", "")
    vault = command.get("vault", "default")
    match command["op"]:
        case "read":  # one read: {"value": ... or None}
            return {"value": client.get_secret(name, vault=vault)}
        case "hits":  # cached reads of a name read before
            return _timed(lambda: client.get_secret(name, vault=vault), command["seconds"])
        case "misses":  # each read after the name's entry is dropped: a vault read each time

            def miss() -> None:
                client.invalidate_cache(name, vault=vault)
                client.get_secret(name, vault=vault)

            return _timed(miss, command["seconds"])
        case "concurrent":  # a storm, or reads while the vault is down
            return _concurrent_reads(client, name, vault, command["threads"], command["reads"])
        case unknown:
            return {"error": f"unknown command {unknown!r}"}


def main() -> None:
    """Answer the benchmark's commands until standard input closes."""
    client = _client(sys.argv[1], sys.argv[2], os.environ["BENCH_VAULT_TOKEN"])
    versions = {
        distribution: importlib.metadata.version(distribution)
        for distribution in ("netrun-config", "azure-keyvault-secrets", "azure-core", "requests")
    }
    print(json.dumps({"versions": versions}), flush=True)
    for line in sys.stdin:
        print(json.dumps(_handle(client, json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
