"""The config service as the runtime runs it: zero configuration reads env and .env under the
default policy, a bad policy file stops the start naming its line, the service serves
before the auth service is up (refusing calls until it is), and shutdown closes it all."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from mainmast.config.v1 import config_service_pb2 as pb
from mainmast.config.v1 import resources_pb2
from mainmast.errors import UnavailableError, translate_rpc_errors
from mainmast.runtime import ServiceServer
from mainmast.testing import start_service_process
from mainmast_config._backend import BackendKind
from mainmast_config._policy_file import PolicyFileError
from mainmast_config._testing import (
    Callers,
    ScriptedBackend,
    bearer_metadata,
    free_port,
    serve_config_service,
)
from mainmast_config.service import ConfigService
from mainmast_config.settings import ConfigSettings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_with_no_configuration_it_reads_env_and_dotenv_under_the_default_policy(
    callers: Callers, tmp_path: Path, log_scan: Any
) -> None:
    env_value = log_scan.secret("zero-config-env-value")
    dotenv_value = log_scan.secret("zero-config-dotenv-value")
    (tmp_path / ".env").write_text(f"SMTP_PASSWORD={dotenv_value}\n")
    settings = ConfigSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        auth_target=callers.target,
        dotenv_path=tmp_path / ".env",
    )
    environ = {"DATABASE_PASSWORD": env_value}
    with capture_logs() as logs:
        async with serve_config_service(settings, environ=environ) as running:
            metadata = bearer_metadata(callers.admin)
            from_env = await running.stub.GetSecret(
                pb.GetSecretRequest(name="database-password"), metadata=metadata
            )
            from_dotenv = await running.stub.GetSecret(
                pb.GetSecretRequest(name="smtp-password"), metadata=metadata
            )

    assert (from_env.secret.value, from_dotenv.secret.value) == (env_value, dotenv_value)
    assert (from_env.secret.backend, from_dotenv.secret.backend) == (
        resources_pb2.BACKEND_ENVIRONMENT,
        resources_pb2.BACKEND_DOTENV,
    )
    ready = next(entry for entry in logs if entry["event"] == "config.ready")
    assert ready["backends"] == ["ENVIRONMENT", "DOTENV"]
    assert ready["access_policy"] == "default: only roles/platform-admin reads"
    assert "config.access_policy_default" in [entry["event"] for entry in logs]


async def test_a_bad_policy_file_stops_the_start_naming_the_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - subjects: [a]\n    secrets: [x]\n    tenant: [b]\n")
    backend = ScriptedBackend(BackendKind.ENVIRONMENT)
    service = ConfigService(
        ConfigSettings(listen="127.0.0.1:0", metrics_listen="", access_policy_file=policy),
        backends=[backend],
    )

    with pytest.raises(PolicyFileError, match=r"line 4, rules\[0\]\.tenant"):
        await ServiceServer(service).start()
    missing = ConfigService(
        ConfigSettings(access_policy_file=tmp_path / "absent.yaml"), backends=[backend]
    )
    with pytest.raises(PolicyFileError, match="does not exist"):
        await missing.startup()
    with pytest.raises(RuntimeError, match="startup"):
        missing.servicer  # noqa: B018 -- the property raises


async def test_it_serves_before_the_auth_service_and_refuses_calls_until_it_answers(
    tmp_path: Path,
) -> None:
    backend = ScriptedBackend(BackendKind.ENVIRONMENT, {"api-key": "not-read-at-all"})
    settings = ConfigSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        auth_target=f"127.0.0.1:{free_port()}",
        auth_wait_seconds=0.05,
        dotenv_path=tmp_path / ".env",
    )
    async with serve_config_service(settings, backends=[backend]) as running:
        with pytest.raises(UnavailableError) as refused:
            async with translate_rpc_errors():
                await running.stub.GetSecret(
                    pb.GetSecretRequest(name="api-key"), metadata=bearer_metadata("a.b.c")
                )

    assert "auth service" in refused.value.message
    assert backend.calls == 0


async def test_draining_ends_open_watches_and_shutdown_closes_the_backends(
    callers: Callers, tmp_path: Path
) -> None:
    backend = ScriptedBackend(BackendKind.ENVIRONMENT, {"api-key": "watched-api-key-value"})
    settings = ConfigSettings(
        listen="127.0.0.1:0",
        metrics_listen="",
        auth_target=callers.target,
        dotenv_path=tmp_path / ".env",
    )
    metadata = bearer_metadata(callers.admin)
    request = pb.WatchSecretsRequest(names=["api-key"])
    async with serve_config_service(settings, backends=[backend]) as running:
        watch = running.stub.WatchSecrets(request, metadata=metadata)
        first = await watch.read()
        # What the runtime calls when SIGTERM starts the drain: the stream ends cleanly, so
        # the server need not wait out the grace period, and the client resumes elsewhere.
        await running.service.draining()
        ended = await watch.read()
        code = await watch.code()
        with pytest.raises(UnavailableError, match="shutting down"):
            async with translate_rpc_errors():
                await running.stub.WatchSecrets(request, metadata=metadata).read()
        assert not backend.closed

    assert first.secret.value == "watched-api-key-value"
    assert (ended, code) == (grpc.aio.EOF, grpc.StatusCode.OK)
    assert backend.closed


@pytest.mark.slow
async def test_serve_starts_with_no_settings_at_all() -> None:
    program = str(Path(sys.executable).with_name("mainmast-config"))
    argv = [program, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""]
    async with start_service_process(argv, env={"MAINMAST_CONFIG_LOG_JSON": "true"}) as process:
        ready = await process.wait_for_line("config.ready")
        await process.address()
        process.send_signal(signal.SIGTERM)
        assert await process.exit_code() == 0

    assert ready["backends"] == ["ENVIRONMENT", "DOTENV"]
    assert ready["auth_required"] is True
    events = [line["event"] for line in process.lines]
    assert "config.access_policy_default" in events
