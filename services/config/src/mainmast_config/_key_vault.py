"""Secrets from Azure Key Vault, through the SDK's aio `SecretClient`.

The SDK's defaults suit a batch job, not a service on a request path: 300 s connect and
read timeouts, ten retries, and a sleep of whatever Retry-After a 429 names before trying
again. Here the timeouts are short and explicit, connection failures are retried a little,
and a status failure (429, 5xx) comes back at once as a typed error, so that the cache in
front can answer from a stale entry and hold off for the Retry-After instead of blocking.
Each call also runs under an overall deadline, whatever the SDK does inside.

The credential is created on first use, not at construction: DefaultAzureCredential off
Azure spends seconds probing for a managed identity, which a service starting without a
vault (or a test) must not pay.

A CA bundle given as a path is loaded once into one TLS context on the client's own
aiohttp session: handed to the SDK as `connection_verify`, a path makes its transport
build a new context for every request, and since aiohttp pools connections per context,
open a new TLS connection for every read too (about five times the cost of a read).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets.aio import SecretClient

from ._backend import BackendKind, SecretRecord
from ._errors import secret_not_found
from ._key_vault_errors import translate_key_vault_errors
from ._names import key_vault_name, name_of_key_vault_name

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential


@dataclass(frozen=True, slots=True)
class KeyVaultOptions:
    """How the Key Vault backend talks to the vault."""

    connection_timeout: float = 3.0
    """Seconds to establish a connection."""
    read_timeout: float = 10.0
    """Seconds to wait for each read of the response."""
    operation_timeout: float = 20.0
    """Seconds one `get` or `list_names` may take in all, retries included."""
    retry_connect: int = 2
    """Retries of a request that could not connect."""
    retry_read: int = 1
    """Retries of a request whose response broke off."""
    retry_backoff_factor: float = 0.2
    """Seconds of the first backoff between retries; it doubles each time."""
    retry_backoff_max: float = 2.0
    """The longest backoff between retries, in seconds."""
    connection_verify: bool | str = True
    """Whether to verify the vault's TLS certificate, or the path of a CA bundle to verify with."""
    verify_challenge_resource: bool = True
    """Whether the bearer challenge's resource must match the vault's domain (leave on in
    production; a vault on a loopback address cannot pass it)."""

    def __post_init__(self) -> None:
        timeouts = (self.connection_timeout, self.read_timeout, self.operation_timeout)
        if min(timeouts) <= 0:
            raise ValueError("Key Vault timeouts are positive")
        if min(self.retry_connect, self.retry_read) < 0:
            raise ValueError("Key Vault retry counts are not negative")
        if min(self.retry_backoff_factor, self.retry_backoff_max) < 0:
            raise ValueError("Key Vault retry backoffs are not negative")


def _default_credential() -> AsyncTokenCredential:
    # Imported here: azure.identity is heavy, and a service without a vault never needs it.
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415

    return DefaultAzureCredential()


class KeyVaultBackend:
    """Reads secrets from one Azure Key Vault.

    Pass `credential` to use one you own (and close), or `credential_factory` to have one
    made on first use and closed by `aclose`; with neither, azure-identity's
    DefaultAzureCredential is made on first use (workload identity in Kubernetes).
    """

    __slots__ = ("_client", "_credential", "_credential_factory", "_options", "_vault_url")

    _credential: AsyncTokenCredential | None

    def __init__(
        self,
        vault_url: str,
        *,
        credential: AsyncTokenCredential | None = None,
        credential_factory: Callable[[], AsyncTokenCredential] | None = None,
        options: KeyVaultOptions | None = None,
    ) -> None:
        if not vault_url.startswith("https://"):
            raise ValueError("a Key Vault URL starts with https://")
        if credential is not None and credential_factory is not None:
            raise ValueError("pass a credential or a credential factory, not both")
        self._vault_url = vault_url
        self._credential = credential
        # None when the caller owns the credential; otherwise how this backend makes its own.
        self._credential_factory: Callable[[], AsyncTokenCredential] | None = (
            None if credential is not None else credential_factory or _default_credential
        )
        self._options = options or KeyVaultOptions()
        self._client: SecretClient | None = None

    @property
    def kind(self) -> BackendKind:
        """BackendKind.KEY_VAULT."""
        return BackendKind.KEY_VAULT

    @property
    def vault_url(self) -> str:
        """The vault read."""
        return self._vault_url

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The secret `name` at `version` (None: the latest)."""
        spelled = key_vault_name(name)
        if spelled is None:
            raise secret_not_found(name)  # Key Vault cannot hold a name it cannot spell
        client = self._secret_client()
        with translate_key_vault_errors(name, version):
            async with asyncio.timeout(self._options.operation_timeout):
                secret = await client.get_secret(spelled, version or None)
        properties = secret.properties
        return SecretRecord(
            name=name,
            value=secret.value or "",
            version=properties.version or "",
            backend=self.kind,
            update_time=properties.updated_on or properties.created_on,
            expire_time=properties.expires_on,
            content_type=properties.content_type or "",
            labels=MappingProxyType(dict(properties.tags or {})),
        )

    async def list_names(self) -> list[str]:
        """The names of the vault's enabled secrets (every page of the listing)."""
        client = self._secret_client()
        names: list[str] = []
        with translate_key_vault_errors():
            async with asyncio.timeout(self._options.operation_timeout):
                async for properties in client.list_properties_of_secrets():
                    name = name_of_key_vault_name(properties.name or "")
                    if name is not None and properties.enabled is not False:
                        names.append(name)
        return names

    async def aclose(self) -> None:
        """Close the client's connections, and the credential if this backend made it."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
            if self._credential_factory is not None and self._credential is not None:
                credential, self._credential = self._credential, None
                await credential.close()

    def _secret_client(self) -> SecretClient:
        if self._client is None:
            credential = self._credential
            if credential is None and self._credential_factory is not None:
                credential = self._credential = self._credential_factory()
            if credential is None:  # one of the two is always set by __init__
                raise RuntimeError("the Key Vault backend has no credential")
            options = self._options
            self._client = SecretClient(
                self._vault_url,
                credential,
                verify_challenge_resource=options.verify_challenge_resource,
                **_transport_options(options),
                retry_total=options.retry_connect + options.retry_read,
                retry_connect=options.retry_connect,
                retry_read=options.retry_read,
                # A status failure is not retried here: see the module's docstring.
                retry_status=0,
                retry_backoff_factor=options.retry_backoff_factor,
                retry_backoff_max=options.retry_backoff_max,
            )
        return self._client


def _transport_options(options: KeyVaultOptions) -> dict[str, object]:
    """The SecretClient keywords for timeouts and TLS trust (see the module docstring)."""
    timeouts: dict[str, object] = {
        "connection_timeout": options.connection_timeout,
        "read_timeout": options.read_timeout,
    }
    if not isinstance(options.connection_verify, str):
        return {**timeouts, "connection_verify": options.connection_verify}
    context = ssl.create_default_context(cafile=options.connection_verify)
    # The options the SDK's transport gives the session it makes itself, plus the context.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=True,
    )
    return {"transport": AioHttpTransport(session=session, session_owner=True, **timeouts)}
