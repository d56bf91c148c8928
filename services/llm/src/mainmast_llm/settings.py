"""Settings of the llm service, from `MAINMAST_LLM_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from mainmast.auth import CallerAuthSettings
from mainmast.db import default_sqlite_url
from mainmast.runtime import ListenAddress, OptionalListenAddress

from ._limits import TenantLimits


class LlmSettings(CallerAuthSettings):
    """The llm service's settings; every field has a working default.

    Callers authenticate with mainmast access tokens, verified against the auth service
    at `auth_target` (`MAINMAST_LLM_AUTH_TARGET`, ...; see CallerAuthSettings);
    `auth_required=false` lets every caller in as the dev principal, for one machine.

    Provider keys written `{secret: NAME}` are read from the config service at
    `config_target`, as the service account `config_client_id` (its tokens come from the
    same auth service); without a `config_target` a routing file that names a secret does
    not start.
    """

    model_config = SettingsConfigDict(env_prefix="MAINMAST_LLM_")

    listen: ListenAddress = "127.0.0.1:50053"
    """Where the gRPC server listens, HOST:PORT."""

    metrics_listen: OptionalListenAddress = "127.0.0.1:9153"
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""

    routing_file: Path | None = None
    """The routing YAML file; None serves the zero-config `dev` alias (the dev provider)."""

    price_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code of the routing file's prices, and so of every recorded cost."""

    database_url: SecretStr | None = None
    """The usage ledger's database (PostgreSQL or SQLite URL; secret, since it may carry a
    password); None: the SQLite file `llm.db` in the data folder."""

    quota_store_url: str = ""
    """Where quota counters live: empty or `memory://` (one replica only), `redis://...`,
    or a PostgreSQL URL (counters shared by every replica)."""

    requests_per_minute: int | None = Field(default=None, ge=0)
    """Every tenant's limit of calls per UTC minute; None: no limit."""

    tokens_per_minute: int | None = Field(default=None, ge=0)
    """Every tenant's limit of tokens per UTC minute; None: no limit."""

    daily_tokens: int | None = Field(default=None, ge=0)
    """Every tenant's token budget per UTC day; None: no budget."""

    monthly_tokens: int | None = Field(default=None, ge=0)
    """Every tenant's token budget per UTC month; None: no budget."""

    ledger_flush_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long shutdown waits for the usage ledger to write what it holds."""

    http_trust_env: bool = True
    """Whether provider calls honour the proxy variables of the environment."""

    config_target: str = ""
    """The config service's gRPC address, HOST:PORT, where `{secret: NAME}` provider keys
    are read; empty: no config service, so a routing file that names a secret does not start."""

    config_client_id: str = ""
    """The client id of the llm service's own service account, whose client-credentials
    tokens (from the auth service at `auth_target`) authenticate it to the config service;
    empty: calls to the config service carry no token (one running `auth_required=false`)."""

    config_client_secret: SecretStr | None = None
    """That service account's client secret; set together with `config_client_id`."""

    @model_validator(mode="after")
    def _config_credentials_complete(self) -> Self:
        has_secret = (
            self.config_client_secret is not None
            and self.config_client_secret.get_secret_value() != ""
        )
        if bool(self.config_client_id) != has_secret:
            raise ValueError(
                "set MAINMAST_LLM_CONFIG_CLIENT_ID and MAINMAST_LLM_CONFIG_CLIENT_SECRET together"
            )
        return self

    def tenant_limits(self) -> TenantLimits:
        """The limits every tenant gets."""
        return TenantLimits(
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            daily_tokens=self.daily_tokens,
            monthly_tokens=self.monthly_tokens,
        )

    def database_target(self) -> str:
        """The ledger's database URL: `database_url`, else the default SQLite file."""
        if self.database_url is not None and self.database_url.get_secret_value().strip():
            return self.database_url.get_secret_value().strip()
        return default_sqlite_url("llm")
