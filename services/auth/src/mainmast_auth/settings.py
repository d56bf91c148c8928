"""Settings of the auth service, from `MAINMAST_AUTH_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mainmast.db import DATA_DIR_ENV, default_sqlite_url
from mainmast.runtime import ListenAddress, OptionalListenAddress, ServiceSettings

DEFAULT_SQLITE_NAME = "auth"
"""The default database is `auth.db` in the data folder (`MAINMAST_DATA_DIR`, else `./data`)."""

GENERATED_ENCRYPTION_KEY_FILE = "auth-signing-key-encryption.key"
"""Where a zero-config run keeps the encryption key it generated, inside the data folder."""


class AuthSettings(ServiceSettings):
    """The auth service's settings; every field has a working default."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_AUTH_")

    listen: ListenAddress = "127.0.0.1:50051"
    """Where the gRPC server listens, HOST:PORT."""

    metrics_listen: OptionalListenAddress = "127.0.0.1:9151"
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""

    database_url: SecretStr | None = None
    """The service's database: a postgresql:// URL, or empty for SQLite `auth.db` in the data
    folder."""

    signing_key_encryption_key: SecretStr | None = None
    """The key (32+ random bytes, base64) that seals private signing keys at rest."""

    signing_key_previous_encryption_keys: tuple[SecretStr, ...] = ()
    """Earlier encryption keys, still opening keys they sealed until those are re-sealed."""

    signing_key_encryption_key_file: Path | None = None
    """Where to keep a generated encryption key when `signing_key_encryption_key` is unset;
    empty for `auth-signing-key-encryption.key` in the data folder. Local runs only."""

    issuer: str = Field(default="mainmast-auth", min_length=1)
    """The `iss` of every access token, and what the service's own verifier expects."""

    audience: str = Field(default="mainmast", min_length=1)
    """The `aud` of every access token, and what the service's own verifier expects."""

    access_token_lifetime_seconds: int = Field(default=900, ge=30, le=86_400)
    """How long an access token lives."""

    signing_algorithm: Literal["EdDSA", "ES256", "RS256"] = "EdDSA"
    """The JWS algorithm of generated signing keys (the first key, and rotations that name none)."""

    token_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    """Clock skew tolerated when verifying `exp`, `nbf` and `iat`."""

    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86_400)
    """How long clients may cache GetJwks, and how often a replica reloads the key ring."""

    bootstrap_admin_tenant: str | None = None
    """The tenant of the first platform admin (`acme` or `tenants/acme`), created at the first
    start that finds no platform admin; set with the username and password, or not at all."""

    bootstrap_admin_username: str | None = None
    """The user id of the first platform admin."""

    bootstrap_admin_password: SecretStr | None = None
    """The first platform admin's password (from a secret store; never logged)."""

    @field_validator(
        "bootstrap_admin_tenant",
        "bootstrap_admin_username",
        "bootstrap_admin_password",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An empty environment variable means "not set", as for the database URL.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @model_validator(mode="after")
    def _bootstrap_admin_complete(self) -> Self:
        given = [
            self.bootstrap_admin_tenant,
            self.bootstrap_admin_username,
            self.bootstrap_admin_password,
        ]
        if any(value is not None for value in given) and any(value is None for value in given):
            raise ValueError(
                "set MAINMAST_AUTH_BOOTSTRAP_ADMIN_TENANT, _USERNAME and _PASSWORD together"
            )
        return self

    def database_target(self) -> str:
        """The database URL to open: `database_url`, else the default SQLite file."""
        if self.database_url is not None and self.database_url.get_secret_value().strip():
            return self.database_url.get_secret_value().strip()
        return default_sqlite_url(DEFAULT_SQLITE_NAME)

    def encryption_key_file(self) -> Path:
        """Where a generated encryption key is kept: the setting, else the data folder's file."""
        if self.signing_key_encryption_key_file is not None:
            return self.signing_key_encryption_key_file
        data_dir = os.environ.get(DATA_DIR_ENV) or "data"
        return Path(data_dir).absolute() / GENERATED_ENCRYPTION_KEY_FILE
