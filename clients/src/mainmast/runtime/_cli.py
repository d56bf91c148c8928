"""The command line of a service process: `mainmast-<name> serve --listen HOST:PORT`."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from pydantic import ValidationError

from mainmast.logging import configure_logging
from mainmast.tracing import configure_tracing

from ._run import event_loop_factory, run_service
from ._service import Service, SettingsT


def service_cli(
    service_class: type[Service[SettingsT]], settings_class: type[SettingsT]
) -> click.Group:
    """Build the `mainmast-<name>` command group of a service, with `serve`.

    `serve` reads `settings_class` from the environment (its `--listen` and
    `--metrics-listen` options win over it), configures logging and tracing,
    serves (on uvloop's event loop where it is installed) until SIGTERM or SIGINT,
    drains, and exits 0. Invalid settings exit 2 with the reason.
    """
    service_class.check_declaration()
    program = f"mainmast-{service_class.name}"
    prefix = settings_class.model_config.get("env_prefix", "")

    @click.group(name=program, help=f"The mainmast {service_class.name} service.")
    def group() -> None:
        """Run the service."""

    @group.command(help=f"Serve {', '.join(service_class.service_names)} over gRPC.")
    @click.option(
        "--listen",
        metavar="HOST:PORT",
        help=f"Where to listen; port 0 picks a free port. [env {prefix}LISTEN]",
    )
    @click.option(
        "--metrics-listen",
        metavar="HOST:PORT",
        help=(
            f"Where to serve Prometheus /metrics; empty turns it off. [env {prefix}METRICS_LISTEN]"
        ),
    )
    def serve(listen: str | None, metrics_listen: str | None) -> None:
        """Serve until SIGTERM or SIGINT, then drain and exit."""
        overrides: dict[str, Any] = {
            key: value
            for key, value in (("listen", listen), ("metrics_listen", metrics_listen))
            if value is not None
        }
        try:
            settings = settings_class(**overrides)
        except ValidationError as exc:
            raise click.UsageError(f"invalid settings:\n{exc}") from exc
        configure_logging(level=settings.log_level, json=settings.log_json)
        tracer_provider = configure_tracing(program)
        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(run_service(service_class(settings), tracer_provider=tracer_provider))
        finally:
            if tracer_provider is not None:
                tracer_provider.shutdown()

    return group
