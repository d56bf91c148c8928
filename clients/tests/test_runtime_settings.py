"""Service settings from the environment, the server options they make, the command line
built from them, and the public names of mainmast.runtime."""

from __future__ import annotations

import grpc.aio
import pytest
import uvloop
from click.testing import CliRunner
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

import mainmast.runtime
from mainmast.runtime import (
    ListenAddress,
    OptionalListenAddress,
    Service,
    ServiceSettings,
    parse_host_port,
    server_options,
    service_cli,
)
from mainmast.runtime._run import event_loop_factory


class DemoSettings(ServiceSettings):
    """A service's settings as a service declares them."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_DEMO_")
    listen: ListenAddress = "127.0.0.1:50099"
    """Where the demo service listens."""
    metrics_listen: OptionalListenAddress = "127.0.0.1:9199"
    """Where the demo service serves /metrics."""


class DemoService(Service[DemoSettings]):
    """A service that is only ever declared here, never served."""

    name = "demo"
    service_names = ("mainmast.demo.v1.DemoService",)

    def register(self, server: grpc.aio.Server) -> None:
        raise AssertionError("these tests never start the service")


@pytest.fixture(autouse=True)
def _no_demo_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DemoSettings.model_fields:
        monkeypatch.delenv(f"MAINMAST_DEMO_{name.upper()}", raising=False)


def test_public_names_are_pinned() -> None:
    assert mainmast.runtime.__all__ == [
        "REQUEST_ID_METADATA_KEY",
        "STOP_SIGNALS",
        "AuthInterceptor",
        "Authenticate",
        "CallInterceptor",
        "ErrorInterceptor",
        "ListenAddress",
        "Metadata",
        "MethodInfo",
        "MetricsInterceptor",
        "OptionalListenAddress",
        "Principal",
        "RequestContextInterceptor",
        "RpcType",
        "ServerMetrics",
        "Service",
        "ServiceServer",
        "ServiceSettings",
        "current_principal",
        "parse_host_port",
        "run_service",
        "server_options",
        "service_cli",
    ]


def test_every_setting_has_a_working_default_and_a_description() -> None:
    settings = DemoSettings()

    assert settings.listen == "127.0.0.1:50099"
    assert settings.metrics_listen == "127.0.0.1:9199"
    assert ServiceSettings().metrics_listen == ""
    assert 0 < settings.grace_period_seconds < 30
    assert settings.log_level == "INFO"
    assert all(field.description for field in ServiceSettings.model_fields.values())
    assert all(field.description for field in DemoSettings.model_fields.values())


def test_settings_come_from_the_environment_under_the_service_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAINMAST_DEMO_LISTEN", "0.0.0.0:6000")
    monkeypatch.setenv("MAINMAST_DEMO_METRICS_LISTEN", "[::]:9100")
    monkeypatch.setenv("MAINMAST_DEMO_GRACE_PERIOD_SECONDS", "5")
    monkeypatch.setenv("MAINMAST_DEMO_LOG_LEVEL", "debug")
    monkeypatch.setenv("MAINMAST_DEMO_LOG_JSON", "true")

    settings = DemoSettings()

    assert settings.listen == "0.0.0.0:6000"
    assert settings.metrics_listen == "[::]:9100"
    assert settings.grace_period_seconds == 5
    assert settings.log_level == "DEBUG"
    assert settings.log_json is True


def test_settings_are_frozen() -> None:
    settings = DemoSettings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.listen = "127.0.0.1:1"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:65535", ("::", 65535)),
    ],
)
def test_host_and_port_are_parsed(address: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(address) == expected


@pytest.mark.parametrize(
    "address",
    ["nonsense", "127.0.0.1", "127.0.0.1:", ":50051", "host:65536", "host:-1", "::1:80", "[]:80"],
)
def test_a_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|port|host|brackets"):
        parse_host_port(address)
    with pytest.raises(ValidationError):
        DemoSettings(listen=address)
    with pytest.raises(ValidationError):
        DemoSettings(metrics_listen=address)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grace_period_seconds", -1),
        ("max_receive_message_bytes", 0),
        ("keepalive_time_seconds", 0),
        ("log_level", "LOUD"),
        ("no_such_setting", 1),
    ],
)
def test_out_of_range_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        DemoSettings(**{field: value})


def test_server_options_carry_size_limits_and_keepalive() -> None:
    options = dict(
        server_options(
            DemoSettings(
                max_receive_message_bytes=1000,
                max_send_message_bytes=2000,
                keepalive_time_seconds=30,
                keepalive_timeout_seconds=5,
                keepalive_permit_without_calls=False,
                keepalive_min_client_ping_interval_seconds=15,
                max_connection_age_seconds=600,
                grace_period_seconds=20,
            )
        )
    )

    assert options["grpc.max_receive_message_length"] == 1000
    assert options["grpc.max_send_message_length"] == 2000
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.keepalive_timeout_ms"] == 5_000
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 15_000
    assert options["grpc.max_connection_age_ms"] == 600_000
    assert options["grpc.max_connection_age_grace_ms"] == 20_000
    assert options["grpc.so_reuseport"] == 0


def test_connections_live_as_long_as_they_like_by_default() -> None:
    assert "grpc.max_connection_age_ms" not in dict(server_options(DemoSettings()))


def test_the_command_line_offers_serve_with_listen() -> None:
    result = CliRunner().invoke(service_cli(DemoService, DemoSettings), ["serve", "--help"])

    assert result.exit_code == 0, result.output
    assert "--listen HOST:PORT" in result.output
    assert "MAINMAST_DEMO_LISTEN" in result.output
    assert "--metrics-listen HOST:PORT" in result.output


def test_the_command_line_is_named_after_the_service() -> None:
    result = CliRunner().invoke(service_cli(DemoService, DemoSettings), ["--help"])

    assert result.exit_code == 0, result.output
    assert "mainmast-demo" in result.output
    assert "serve" in result.output


def test_serve_refuses_a_malformed_listen_address_with_the_reason() -> None:
    result = CliRunner().invoke(
        service_cli(DemoService, DemoSettings), ["serve", "--listen", "nonsense"]
    )

    assert result.exit_code == 2
    assert "HOST:PORT" in result.output


def test_serve_refuses_malformed_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAINMAST_DEMO_GRACE_PERIOD_SECONDS", "soon")

    result = CliRunner().invoke(service_cli(DemoService, DemoSettings), ["serve"])

    assert result.exit_code == 2
    assert "grace_period_seconds" in result.output


def test_service_processes_run_on_uvloops_event_loop() -> None:
    factory = event_loop_factory()
    assert factory is uvloop.new_event_loop
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_a_service_without_a_name_cannot_have_a_command_line() -> None:
    class Nameless(DemoService):
        name = ""

    with pytest.raises(TypeError, match="name"):
        service_cli(Nameless, DemoSettings)
