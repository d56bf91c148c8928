"""Settings every service process shares, read from the environment."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_MEBIBYTE = 1024 * 1024


def parse_host_port(address: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 hosts in brackets, `[::1]:50051`) into host and port.

    Raises ValueError for anything else; port 0 means "any free port".
    """
    host, separator, port_text = address.rpartition(":")
    if not separator or not host or not port_text.isdigit():
        raise ValueError(f"{address!r} is not HOST:PORT (for example 127.0.0.1:50051)")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{address!r}: port {port} is above 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{address!r}: write an IPv6 host in brackets, as in [::1]:50051")
    if not host:
        raise ValueError(f"{address!r} has no host")
    return host, port


def _checked_address(address: str) -> str:
    parse_host_port(address)
    return address


def _checked_optional_address(address: str) -> str:
    return _checked_address(address) if address else address


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


ListenAddress = Annotated[str, AfterValidator(_checked_address)]
"""A `HOST:PORT` to bind; port 0 binds any free port."""

OptionalListenAddress = Annotated[str, AfterValidator(_checked_optional_address)]
"""A `HOST:PORT` to bind, or empty for "do not listen"."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ServiceSettings(BaseSettings):
    """What every service process is configured with; each service subclasses it.

    A subclass sets its own environment prefix and defaults, for example::

        class AuthSettings(ServiceSettings):
            model_config = SettingsConfigDict(env_prefix="MAINMAST_AUTH_")
            listen: ListenAddress = "127.0.0.1:50051"
            metrics_listen: OptionalListenAddress = "127.0.0.1:9151"

    An overridden field keeps its validation only with the same annotation
    (`ListenAddress`, `OptionalListenAddress`), and its description only with an
    attribute docstring of its own. Every field has a working default, so a service
    starts with no configuration. Settings are frozen once read.
    """

    model_config = SettingsConfigDict(
        env_prefix="MAINMAST_",
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    listen: ListenAddress = "127.0.0.1:0"
    """Where the gRPC server listens, HOST:PORT; port 0 picks a free port (logged)."""

    metrics_listen: OptionalListenAddress = ""
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""

    grace_period_seconds: float = Field(default=25.0, ge=0)
    """How long in-flight calls may take to finish after SIGTERM or SIGINT; below
    Kubernetes' default termination grace period of 30 s, so the process exits by
    itself before it would be killed."""

    max_receive_message_bytes: int = Field(default=4 * _MEBIBYTE, gt=0)
    """The largest request message accepted; larger ones get RESOURCE_EXHAUSTED."""

    max_send_message_bytes: int = Field(default=4 * _MEBIBYTE, gt=0)
    """The largest response message sent; larger ones fail with RESOURCE_EXHAUSTED."""

    keepalive_time_seconds: float = Field(default=60.0, gt=0)
    """How long a connection may stay silent before the server pings the client."""

    keepalive_timeout_seconds: float = Field(default=20.0, gt=0)
    """How long the server waits for a ping's answer before closing the connection."""

    keepalive_permit_without_calls: bool = True
    """Whether keepalive pings flow on a connection with no call in progress, from
    the server and from clients (idle pooled channels keep their connections)."""

    keepalive_min_client_ping_interval_seconds: float = Field(default=10.0, gt=0)
    """The shortest interval between client pings the server tolerates before it
    answers with GOAWAY (too_many_pings)."""

    max_connection_age_seconds: float | None = Field(default=None, gt=0)
    """Close connections older than this (after the grace period), so clients spread
    over new replicas; None keeps connections for as long as they live."""

    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = "INFO"
    """The lowest level of log lines written."""

    log_json: bool | None = None
    """JSON lines (true), readable console (false), or JSON unless on a terminal (unset)."""
