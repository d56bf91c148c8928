"""Settings of the auth service, from `MAINMAST_AUTH_*` environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from mainmast.runtime import ListenAddress, OptionalListenAddress, ServiceSettings


class AuthSettings(ServiceSettings):
    """The auth service's settings; every field has a working default."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_AUTH_")

    listen: ListenAddress = "127.0.0.1:50051"
    """Where the gRPC server listens, HOST:PORT."""

    metrics_listen: OptionalListenAddress = "127.0.0.1:9151"
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""
