"""Settings of the llm service, from `MAINMAST_LLM_*` environment variables."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from mainmast.runtime import ListenAddress, OptionalListenAddress, ServiceSettings


class LlmSettings(ServiceSettings):
    """The llm service's settings; every field has a working default."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_LLM_")

    listen: ListenAddress = "127.0.0.1:50053"
    """Where the gRPC server listens, HOST:PORT."""

    metrics_listen: OptionalListenAddress = "127.0.0.1:9153"
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""
