"""Settings of the config service, from `MAINMAST_CONFIG_*` environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from mainmast.runtime import ListenAddress, OptionalListenAddress, ServiceSettings


class ConfigSettings(ServiceSettings):
    """The config service's settings; every field has a working default."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_CONFIG_")

    listen: ListenAddress = "127.0.0.1:50052"
    """Where the gRPC server listens, HOST:PORT."""

    metrics_listen: OptionalListenAddress = "127.0.0.1:9152"
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""
