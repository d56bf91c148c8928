"""The local Key Vault of the config benchmark, in a process of its own.

Usage: python -m bench._config_vault_process   (from the repository's root)

It starts the local vault (`bench._config_vault.local_vault()`: HTTPS on a free port of
127.0.0.1, Key Vault's REST API, a certificate authority made at start) and, in front of
it, a `LatencyProxy`: the same vault as if it were across a network. It prints one JSON
line `{"url": ..., "far_url": ..., "ca_path": ...}`, then answers one JSON line for each
command line read from its standard input:

- `{"op": "set", "name": N, "value": V}`: a new version of the Key Vault secret N;
- `{"op": "requests"}`: `{"count": C}`, the authorised requests the vault has answered
  (directly or through the proxy);
- `{"op": "stop"}`: the vault goes down (every connection cut, new ones refused).

It closes the vault (and removes its certificates) when its standard input closes or on
SIGTERM. In a process of its own, the vault's handler threads do not compete with the
load generator's event loop for one interpreter lock, and its CPU time is its own.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any, NoReturn

from bench._config_vault import FAR_VAULT_ONE_WAY_SECONDS, LatencyProxy, local_vault
from mainmast_config._local_key_vault import LocalKeyVault


def _answer(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _serve(vault: LocalKeyVault, proxy: LatencyProxy) -> None:
    _answer({"url": vault.url, "far_url": proxy.url, "ca_path": vault.ca_path})
    for line in sys.stdin:
        command = json.loads(line)
        match command["op"]:
            case "set":
                _answer({"version": vault.set_secret(command["name"], command["value"])})
            case "requests":
                _answer({"count": len(vault.requests)})
            case "stop":
                vault.stop()
                _answer({})
            case unknown:
                _answer({"error": f"unknown command {unknown!r}"})


def _exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def main() -> None:
    """Serve the vault, its proxy and its commands until standard input closes or SIGTERM."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with local_vault() as vault, LatencyProxy(vault.port, FAR_VAULT_ONE_WAY_SECONDS) as proxy:
        _serve(vault, proxy)


if __name__ == "__main__":
    main()
