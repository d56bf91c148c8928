"""Fixtures of the config core's tests: a fake clock, a running local Key Vault and a
credential it accepts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mainmast_config._local_key_vault import LocalKeyVault
from mainmast_config._testing import FakeClock, VaultCredential


@pytest.fixture
def clock() -> FakeClock:
    """A clock that stands still until advanced."""
    return FakeClock()


@pytest.fixture
async def vault() -> AsyncIterator[LocalKeyVault]:
    """A running local Key Vault with two secrets a listing page, stopped after the test."""
    with LocalKeyVault(page_size=2) as local_vault:
        yield local_vault
    # Stopping cut the vault's connections; a few turns of the loop let the clients' TLS
    # transports see that and close, before the loop itself closes.
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
def credential() -> VaultCredential:
    """A credential the local vault accepts."""
    return VaultCredential()
