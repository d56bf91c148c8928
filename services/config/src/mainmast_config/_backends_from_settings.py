"""The backend chain the settings describe: which backends, in which order, set up how."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ._backend import SecretBackend
from ._dotenv import DotenvBackend
from ._environment import EnvironmentBackend
from ._files import FilesBackend
from ._key_vault import KeyVaultBackend
from .settings import BackendName, ConfigSettings, KeyVaultCredentialKind

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential


def key_vault_credential_factory(
    kind: KeyVaultCredentialKind, *, managed_identity_client_id: str | None = None
) -> Callable[[], AsyncTokenCredential]:
    """How to make the azure-identity credential `kind`, on first use (never at start: off
    Azure, DefaultAzureCredential spends seconds probing for a managed identity)."""

    def make() -> AsyncTokenCredential:
        # Imported here: azure.identity is heavy, and a service without a vault never needs it.
        from azure.identity import aio as identity  # noqa: PLC0415

        client_id = managed_identity_client_id
        match kind:
            case "workload_identity":
                return identity.WorkloadIdentityCredential()
            case "managed_identity":
                return identity.ManagedIdentityCredential(client_id=client_id)
            case "azure_cli":
                return identity.AzureCliCredential()
            case "environment":
                return identity.EnvironmentCredential()
            case "default":
                return identity.DefaultAzureCredential(managed_identity_client_id=client_id)

    return make


def backends_from_settings(
    settings: ConfigSettings,
    *,
    key_vault_credential: AsyncTokenCredential | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[SecretBackend]:
    """The backends of `settings.backend_order()`, in that order.

    `key_vault_credential` replaces the credential the settings choose (the caller owns and
    closes it); `environ` replaces the process environment (tests).
    """
    return [
        _backend(name, settings, key_vault_credential, environ) for name in settings.backend_order()
    ]


def _backend(
    name: BackendName,
    settings: ConfigSettings,
    credential: AsyncTokenCredential | None,
    environ: Mapping[str, str] | None,
) -> SecretBackend:
    match name:
        case "key_vault":
            if settings.key_vault_url is None:  # the settings' validator makes this impossible
                raise ValueError("the key_vault backend needs key_vault_url")
            factory = None
            if credential is None:
                factory = key_vault_credential_factory(
                    settings.key_vault_credential,
                    managed_identity_client_id=settings.key_vault_managed_identity_client_id,
                )
            return KeyVaultBackend(
                settings.key_vault_url,
                credential=credential,
                credential_factory=factory,
                options=settings.key_vault_options(),
            )
        case "files":
            if settings.files_dir is None:  # the settings' validator makes this impossible
                raise ValueError("the files backend needs files_dir")
            return FilesBackend(settings.files_dir)
        case "env":
            return EnvironmentBackend(prefix=settings.env_prefix, environ=environ)
        case "dotenv":
            return DotenvBackend(settings.dotenv_path, prefix=settings.env_prefix)
