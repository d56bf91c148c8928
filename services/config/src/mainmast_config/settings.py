"""Settings of the config service, from `MAINMAST_CONFIG_*` environment variables.

With none set the service reads secrets from its environment and `./.env`, caches them for
five minutes, lets only callers holding `roles/platform-admin` read them, and authenticates
callers against the auth service at 127.0.0.1:50051 (the fields of `CallerAuthSettings`).
Setting `MAINMAST_CONFIG_KEY_VAULT_URL` puts Azure Key Vault first in the chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from mainmast.auth import CallerAuthSettings
from mainmast.runtime import ListenAddress, OptionalListenAddress

from ._cache import CacheOptions
from ._key_vault import KeyVaultOptions
from ._names import name_problem

BackendName = Literal["key_vault", "files", "env", "dotenv"]
"""A backend as the settings name it."""

KeyVaultCredentialKind = Literal[
    "default", "workload_identity", "managed_identity", "azure_cli", "environment"
]
"""Which azure-identity credential reads the vault."""


def _comma_separated(value: object) -> object:
    # `key_vault,env` in the environment; a list or tuple when given in code.
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        return tuple(item for item in items if item) or None
    return value


class ConfigSettings(CallerAuthSettings):
    """The config service's settings; every field has a working default."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_CONFIG_")

    listen: ListenAddress = "127.0.0.1:50052"
    """Where the gRPC server listens, HOST:PORT."""

    metrics_listen: OptionalListenAddress = "127.0.0.1:9152"
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""

    backends: Annotated[
        tuple[BackendName, ...] | None, NoDecode, BeforeValidator(_comma_separated)
    ] = None
    """The backends asked, in order, comma-separated (`key_vault,files,env,dotenv`); unset:
    Key Vault when `key_vault_url` is set, mounted files when `files_dir` is set, then the
    environment and the .env file."""

    key_vault_url: str | None = Field(default=None, pattern=r"^https://")
    """The vault's URL, `https://<name>.vault.azure.net`; unset: no Key Vault."""

    key_vault_credential: KeyVaultCredentialKind = "default"
    """How the service authenticates to the vault: azure-identity's DefaultAzureCredential
    (workload identity, managed identity, the environment, the Azure CLI, in that order),
    or one of them alone. The credential is made on the first read, never at start."""

    key_vault_managed_identity_client_id: str | None = None
    """The client id of a user-assigned managed identity (`managed_identity`, `default`)."""

    key_vault_connection_timeout_seconds: float = Field(default=3.0, gt=0)
    """Seconds to connect to the vault."""

    key_vault_read_timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds to wait for each read of a vault response."""

    key_vault_operation_timeout_seconds: float = Field(default=20.0, gt=0)
    """Seconds one vault read or listing may take in all, retries included."""

    key_vault_retry_connect: int = Field(default=2, ge=0)
    """Retries of a vault request that could not connect."""

    key_vault_retry_read: int = Field(default=1, ge=0)
    """Retries of a vault request whose response broke off."""

    key_vault_retry_backoff_seconds: float = Field(default=0.2, ge=0)
    """The first backoff between vault retries; it doubles each time."""

    key_vault_retry_backoff_max_seconds: float = Field(default=2.0, ge=0)
    """The longest backoff between vault retries."""

    key_vault_ca_bundle: Path | None = None
    """A PEM file of certificate authorities to verify the vault with; unset: the system's."""

    key_vault_verify_challenge_resource: bool = True
    """Whether the vault's bearer challenge must name the vault's domain; leave it on."""

    files_dir: Path | None = None
    """A directory of mounted files, one per secret (a Kubernetes secret volume); unset: none."""

    env_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_]*$")
    """A prefix of the environment variables and .env keys that hold secrets (`APP_`: the
    secret `database-password` is `APP_DATABASE_PASSWORD`); empty: every variable is one."""

    dotenv_path: Path = Path(".env")
    """The .env file read (relative to the working directory); a missing file is empty."""

    cache_ttl_seconds: float = Field(default=300.0, gt=0)
    """How long a value read from a backend is served from the cache."""

    cache_ttl_overrides: dict[str, float] = Field(default_factory=dict)
    """TTLs of particular names in seconds, as JSON: `{"database-password": 30}`."""

    cache_refresh_ahead: float = Field(default=0.1, ge=0, lt=1)
    """The last fraction of a TTL in which a read also refreshes the value in the background."""

    cache_max_staleness_seconds: float = Field(default=86_400.0, ge=0)
    """How long past its TTL a cached value still answers while its backend fails."""

    cache_negative_ttl_seconds: float = Field(default=5.0, ge=0)
    """How long a name no backend has is remembered as missing; 0 remembers nothing."""

    cache_error_retry_seconds: float = Field(default=5.0, ge=0)
    """After a failed backend read, how long stale answers come without asking it again."""

    cache_max_entries: int = Field(default=10_000, ge=1)
    """The most values cached; the least recently used go first."""

    watch_poll_interval_seconds: float = Field(default=10.0, gt=0)
    """Seconds between two reads of the watched secrets, for WatchSecrets."""

    access_policy_file: Path | None = None
    """The YAML access policy (who reads which names); unset: only callers holding
    `roles/platform-admin` read anything."""

    access_policy_poll_interval_seconds: float = Field(default=5.0, gt=0)
    """Seconds between two looks at the access policy file for changes."""

    @field_validator("cache_ttl_overrides")
    @classmethod
    def _overrides_name_secrets_with_positive_ttls(
        cls, value: dict[str, float]
    ) -> dict[str, float]:
        for name, ttl in value.items():
            problem = name_problem(name)
            if problem is not None:
                raise ValueError(f"{name!r}: {problem}")
            if ttl <= 0:
                raise ValueError(f"{name!r}: a TTL is positive")
        return value

    @model_validator(mode="after")
    def _backends_are_configured(self) -> ConfigSettings:
        if self.backends is None:
            return self
        if len(set(self.backends)) != len(self.backends):
            raise ValueError("backends: each backend appears once")
        if not self.backends:
            raise ValueError("backends: name at least one")
        if "key_vault" in self.backends and self.key_vault_url is None:
            raise ValueError("backends: key_vault needs key_vault_url")
        if "files" in self.backends and self.files_dir is None:
            raise ValueError("backends: files needs files_dir")
        return self

    def backend_order(self) -> tuple[BackendName, ...]:
        """The backends asked, in order: `backends`, or what is configured."""
        if self.backends is not None:
            return self.backends
        order: list[BackendName] = []
        if self.key_vault_url is not None:
            order.append("key_vault")
        if self.files_dir is not None:
            order.append("files")
        return (*order, "env", "dotenv")

    def cache_options(self) -> CacheOptions:
        """The cache's options these settings describe."""
        return CacheOptions(
            ttl=self.cache_ttl_seconds,
            ttl_overrides=dict(self.cache_ttl_overrides),
            refresh_ahead=self.cache_refresh_ahead,
            max_staleness=self.cache_max_staleness_seconds,
            negative_ttl=self.cache_negative_ttl_seconds,
            error_retry_interval=self.cache_error_retry_seconds,
            max_entries=self.cache_max_entries,
        )

    def key_vault_options(self) -> KeyVaultOptions:
        """How the Key Vault backend talks to the vault."""
        return KeyVaultOptions(
            connection_timeout=self.key_vault_connection_timeout_seconds,
            read_timeout=self.key_vault_read_timeout_seconds,
            operation_timeout=self.key_vault_operation_timeout_seconds,
            retry_connect=self.key_vault_retry_connect,
            retry_read=self.key_vault_retry_read,
            retry_backoff_factor=self.key_vault_retry_backoff_seconds,
            retry_backoff_max=self.key_vault_retry_backoff_max_seconds,
            connection_verify=(
                True if self.key_vault_ca_bundle is None else str(self.key_vault_ca_bundle)
            ),
            verify_challenge_resource=self.key_vault_verify_challenge_resource,
        )
