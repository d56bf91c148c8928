"""Each service starts with `mainmast-<name> serve`, answers health and reflection for
its contract, and drains and exits 0 on SIGTERM; with no settings it takes its default
address."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import grpc.aio
import pytest
from grpc_health.v1 import health_pb2

from mainmast.runtime import ServiceSettings
from mainmast.testing import health_status, list_services, start_service_process
from mainmast_auth.settings import AuthSettings
from mainmast_config.settings import ConfigSettings
from mainmast_llm.settings import LlmSettings

SERVICES = {
    "auth": ("mainmast.auth.v1.AuthService", AuthSettings, "127.0.0.1:50051"),
    "config": ("mainmast.config.v1.ConfigService", ConfigSettings, "127.0.0.1:50052"),
    "llm": ("mainmast.llm.v1.LlmService", LlmSettings, "127.0.0.1:50053"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_serve_answers_health_and_reflection_then_drains_on_sigterm(
    name: str, tmp_path: Path
) -> None:
    full_name, _, _ = SERVICES[name]
    program = str(Path(sys.executable).with_name(f"mainmast-{name}"))
    argv = [program, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
    env = {f"MAINMAST_{name.upper()}_LOG_JSON": "true", "MAINMAST_DATA_DIR": str(tmp_path)}

    async with start_service_process(argv, env=env) as service:
        address = await service.address()
        async with grpc.aio.insecure_channel(address) as channel:
            assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING
            assert await health_status(channel, full_name) == health_pb2.HealthCheckResponse.SERVING
            assert full_name in await list_services(channel)

        service.send_signal(signal.SIGTERM)
        assert await service.exit_code() == 0
    assert [line["event"] for line in service.lines][-1] == "stopped"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_settings_work_with_no_configuration(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, settings_class, default_listen = SERVICES[name]
    for key in [k for k in os.environ if k.startswith("MAINMAST_")]:
        monkeypatch.delenv(key)

    settings: ServiceSettings = settings_class()

    assert settings.listen == default_listen
    assert settings.metrics_listen.startswith("127.0.0.1:")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_settings_come_from_the_service_environment_prefix(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, settings_class, _ = SERVICES[name]
    monkeypatch.setenv(f"MAINMAST_{name.upper()}_LISTEN", "127.0.0.1:6000")
    monkeypatch.setenv(f"MAINMAST_{name.upper()}_GRACE_PERIOD_SECONDS", "3")

    settings: ServiceSettings = settings_class()

    assert (settings.listen, settings.grace_period_seconds) == ("127.0.0.1:6000", 3.0)
