"""The config service of the config benchmark, in a process of its own.

Usage: python -m bench._config_server   (from the repository's root; settings from
`MAINMAST_CONFIG_*` environment variables)

This is what `mainmast-config serve` does (settings from the environment, logging,
`run_service` until SIGTERM, then drain), with one difference: the Key Vault credential.
The service's settings choose among azure-identity's credentials, each of which gets its
token from Microsoft Entra ID; the local vault accepts only its own fixed token, so the
service is given `VaultCredential` (the credential its own tests use), which hands that
token out. Everything else, the Key Vault backend and its `SecretClient` included, is
built from the settings as in production.
"""

from __future__ import annotations

import asyncio

from mainmast.logging import configure_logging
from mainmast.runtime import run_service
from mainmast_config._testing import VaultCredential
from mainmast_config.service import ConfigService
from mainmast_config.settings import ConfigSettings


async def _serve(settings: ConfigSettings) -> None:
    credential = VaultCredential()
    try:
        await run_service(ConfigService(settings, key_vault_credential=credential))
    finally:
        await credential.close()


def main() -> None:
    """Serve the config service until SIGTERM or SIGINT."""
    settings = ConfigSettings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
