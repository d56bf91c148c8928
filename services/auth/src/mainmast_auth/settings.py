"""Settings of the auth service, from `MAINMAST_AUTH_*` environment variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from mainmast.db import default_sqlite_url
from mainmast.runtime import ListenAddress, OptionalListenAddress, ServiceSettings

DEFAULT_SQLITE_NAME = "auth"
"""The default database is `auth.db` in the data folder (`MAINMAST_DATA_DIR`, else `./data`)."""


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

    def database_target(self) -> str:
        """The database URL to open: `database_url`, else the default SQLite file."""
        if self.database_url is not None and self.database_url.get_secret_value().strip():
            return self.database_url.get_secret_value().strip()
        return default_sqlite_url(DEFAULT_SQLITE_NAME)
