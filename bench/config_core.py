"""The config core in process: the secret cache over the Key Vault backend, against the
Azure SDK called directly, both reading the same local Key Vault over HTTPS.

`uv run --all-packages python -m bench config_core` measures, side by side in one run:

1. Reads of one name: `SecretCache.get` on a hit, against `SecretClient.get_secret` (aio)
   straight to the vault. p50, p99 and reads per second.
2. A storm: 1000 concurrent reads of a name nobody has read yet. Requests that reach the
   vault, and time to the last answer. Target: one vault request for the cache.
3. The vault down: after a cached entry has expired, the vault stops and 1000 reads of
   the name follow. Failed reads. Target: zero for the cache.

The vault is `bench._config_vault.local_vault()` (the local vault without its Nagle stall)
and the direct client `bench._config_vault.sdk_client()` (one TLS context for the vault's
certificate authority). The gRPC GetSecret figures, and netrun-config's cache on the same
vault, are bench/config_grpc.py's; this one measures the core the servicer stands on.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from azure.keyvault.secrets.aio import SecretClient

from bench._config_vault import local_vault, sdk_client
from mainmast.errors import MainmastError
from mainmast_config._cache import CacheOptions, CacheState, SecretCache
from mainmast_config._chain import BackendChain
from mainmast_config._key_vault import KeyVaultBackend, KeyVaultOptions
from mainmast_config._local_key_vault import LocalKeyVault
from mainmast_config._testing import VaultCredential

HIT_READS = 50_000
DIRECT_READS = 500
STORM = 1000
DOWN_READS = 1000
DOWN_DIRECT_READS = 50

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "config_core.json"


def _options(vault: LocalKeyVault) -> KeyVaultOptions:
    return KeyVaultOptions(
        connection_verify=vault.ca_path, verify_challenge_resource=False, retry_backoff_factor=0.0
    )


def _sdk_client(vault: LocalKeyVault) -> SecretClient:
    # The SDK as a team would set it up (one TLS context for the vault's CA), with our
    # timeouts, so a down vault fails fast.
    return sdk_client(vault.url, vault.ca_path)


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "p50_us": ordered[len(ordered) // 2] / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99)] / 1000,
        "reads_per_s": len(ordered) / (sum(ordered) / 1e9),
        "mean_us": statistics.fmean(ordered) / 1000,
    }


async def bench_reads(vault: LocalKeyVault) -> dict[str, dict[str, float]]:
    """Latency of a cache hit against a direct SDK read."""
    vault.set_secret("database-password", "bench-value")
    backend = KeyVaultBackend(vault.url, credential=VaultCredential(), options=_options(vault))
    cache = SecretCache(BackendChain([backend]))
    client = _sdk_client(vault)
    try:
        await cache.get("database-password")
        await client.get_secret("database-password")
        hits: list[int] = []
        for _ in range(HIT_READS):
            start = time.perf_counter_ns()
            answer = await cache.get("database-password")
            hits.append(time.perf_counter_ns() - start)
            if answer.state is not CacheState.HIT:
                raise RuntimeError(f"expected a hit, got {answer.state}")
        direct: list[int] = []
        for _ in range(DIRECT_READS):
            start = time.perf_counter_ns()
            await client.get_secret("database-password")
            direct.append(time.perf_counter_ns() - start)
    finally:
        await client.close()
        await cache.aclose()
        await backend.aclose()
    return {"cache_hit": _percentiles(hits), "sdk_direct": _percentiles(direct)}


async def bench_storm(vault: LocalKeyVault) -> dict[str, dict[str, float]]:
    """Vault requests made by 1000 concurrent reads of a cold name."""
    vault.set_secret("cold-cache", "a")
    vault.set_secret("cold-direct", "b")
    backend = KeyVaultBackend(vault.url, credential=VaultCredential(), options=_options(vault))
    cache = SecretCache(BackendChain([backend]))
    client = _sdk_client(vault)
    results: dict[str, dict[str, float]] = {}
    try:
        # Warm both clients' connections and tokens on another name, so the storm counts reads.
        vault.set_secret("warm-up", "w")
        await backend.get("warm-up")
        await client.get_secret("warm-up")
        for label, read in (
            ("cache", lambda: cache.get("cold-cache")),
            ("sdk_direct", lambda: client.get_secret("cold-direct")),
        ):
            before = len(vault.requests)
            start = time.perf_counter()
            outcomes = await asyncio.gather(*(read() for _ in range(STORM)), return_exceptions=True)
            elapsed = time.perf_counter() - start
            results[label] = {
                "vault_requests": len(vault.requests) - before,
                "failed_reads": sum(isinstance(outcome, BaseException) for outcome in outcomes),
                "seconds": elapsed,
            }
    finally:
        await client.close()
        await cache.aclose()
        await backend.aclose()
    return results


async def bench_vault_down() -> dict[str, dict[str, float]]:
    """Failed reads of a cached, expired name while the vault is down."""
    vault = local_vault()
    vault.start()
    vault.set_secret("database-password", "v")
    backend = KeyVaultBackend(vault.url, credential=VaultCredential(), options=_options(vault))
    cache = SecretCache(BackendChain([backend]), CacheOptions(ttl=0.05))
    client = _sdk_client(vault)
    try:
        await cache.get("database-password")
        await client.get_secret("database-password")
        vault.stop()
        await asyncio.sleep(0.1)  # the cache entry expires
        states: dict[str, int] = {}
        failed = 0
        for _ in range(DOWN_READS):
            try:
                answer = await cache.get("database-password")
            except MainmastError:
                failed += 1
            else:
                states[answer.state.value] = states.get(answer.state.value, 0) + 1
        direct_failed = 0
        for _ in range(DOWN_DIRECT_READS):
            try:
                await client.get_secret("database-password")
            except Exception:  # noqa: BLE001 -- counting failures of any kind is the point
                direct_failed += 1
    finally:
        await client.close()
        await cache.aclose()
        await backend.aclose()
        vault.close()
    return {
        "cache": {"reads": DOWN_READS, "failed_reads": failed, **states},
        "sdk_direct": {"reads": DOWN_DIRECT_READS, "failed_reads": direct_failed},
    }


def _table(reads: dict[str, Any], storm: dict[str, Any], down: dict[str, Any]) -> str:
    hit, direct = reads["cache_hit"], reads["sdk_direct"]
    lines = [
        "| contender | read p50 | read p99 | reads/s | storm: vault requests | storm: s "
        "| vault down: failed reads |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| SecretCache over KeyVaultBackend | {hit['p50_us']:.1f} us | {hit['p99_us']:.1f} us "
        f"| {hit['reads_per_s']:,.0f} | {storm['cache']['vault_requests']} "
        f"| {storm['cache']['seconds']:.3f} "
        f"| {down['cache']['failed_reads']} of {down['cache']['reads']} |",
        f"| SecretClient (aio) direct | {direct['p50_us']:.1f} us | {direct['p99_us']:.1f} us "
        f"| {direct['reads_per_s']:,.0f} | {storm['sdk_direct']['vault_requests']} "
        f"| {storm['sdk_direct']['seconds']:.3f} "
        f"| {down['sdk_direct']['failed_reads']} of {down['sdk_direct']['reads']} |",
    ]
    return "\n".join(lines)


async def _run() -> dict[str, Any]:
    with local_vault() as vault:
        print("Reads of one name:", flush=True)
        reads = await bench_reads(vault)
        print("A storm of 1000 concurrent reads of a cold name:", flush=True)
        storm = await bench_storm(vault)
    print("The vault down:", flush=True)
    down = await bench_vault_down()
    return {"reads": reads, "storm": storm, "vault_down": down}


def main() -> None:
    """Run the three measurements, print the table, save the figures."""
    figures = asyncio.run(_run())
    print()
    print(_table(figures["reads"], figures["storm"], figures["vault_down"]))
    one_call = figures["storm"]["cache"]["vault_requests"] == 1
    no_failures = figures["vault_down"]["cache"]["failed_reads"] == 0
    print(f"\nOne vault request per storm: {'met' if one_call else 'MISSED'}")
    print(f"Zero failed reads while the vault is down: {'met' if no_failures else 'MISSED'}")
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **figures,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nsaved {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
