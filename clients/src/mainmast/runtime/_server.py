"""One service's grpc.aio server with everything the runtime adds around it."""

from __future__ import annotations

from typing import Any, Literal

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider

from mainmast.logging import get_logger
from mainmast.tracing import server_interceptor

from ._auth import AuthInterceptor
from ._errors import ErrorInterceptor
from ._metrics import MetricsEndpoint, MetricsInterceptor, ServerMetrics
from ._request_context import RequestContextInterceptor
from ._service import Service
from ._settings import ServiceSettings, parse_host_port
from ._wrapping import CallInterceptor, InterceptorChain

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


def server_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    """The grpc channel arguments of a server configured by `settings`."""
    options = [
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        ("grpc.max_send_message_length", settings.max_send_message_bytes),
        ("grpc.keepalive_time_ms", _milliseconds(settings.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", _milliseconds(settings.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", int(settings.keepalive_permit_without_calls)),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            _milliseconds(settings.keepalive_min_client_ping_interval_seconds),
        ),
        # Keepalive pings on an idle connection carry no data; 0 lifts the limit
        # on how many may go out in a row.
        ("grpc.http2.max_pings_without_data", 0),
        # Linux lets two processes bind one port with SO_REUSEPORT, which grpc turns
        # on by default: a second replica on a taken port would start silently.
        ("grpc.so_reuseport", 0),
    ]
    if settings.max_connection_age_seconds is not None:
        options += [
            ("grpc.max_connection_age_ms", _milliseconds(settings.max_connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", _milliseconds(settings.grace_period_seconds)),
        ]
    return options


class ServiceServer:
    """One service's grpc.aio server, with health, reflection, interceptors and metrics.

    `await start()` runs the service's startup hook, registers its servicers next to
    the grpc.health.v1 health service (every service SERVING) and server reflection,
    binds `settings.listen`, starts the /metrics endpoint when `metrics_listen` is
    set, and logs a "serving" line with the bound address. `await stop()` drains:
    health turns NOT_SERVING for every service, new calls are refused, in-flight
    calls get the grace period to finish, then the service's shutdown hook runs.
    Also an async context manager (start on entry, stop on exit).

    A health Watch stream is a call in flight like any other: a client that keeps
    one open through the drain holds the server until the grace period ends.

    Interceptors, outermost first: tracing (when a tracer provider is given), request
    id and logging context, metrics, error mapping, authentication (when the service
    has a hook). Health checks and reflection pass by all of them.
    """

    def __init__(
        self, service: Service[Any], *, tracer_provider: TracerProvider | None = None
    ) -> None:
        type(service).check_declaration()
        self.service = service
        self.settings: ServiceSettings = service.settings
        self.metrics = ServerMetrics()
        """The server's own metrics (and registry, `metrics.registry`)."""
        service.metrics_registry = self.metrics.registry
        self._tracer_provider = tracer_provider
        self._logger = get_logger(__name__).bind(service=service.name)
        self._state: Literal["new", "starting", "serving", "stopped"] = "new"
        self._server: grpc.aio.Server | None = None
        self._health: Any = None
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The port the gRPC server is bound to (the real one when asked for port 0)."""
        self._require_serving()
        return self._port

    @property
    def address(self) -> str:
        """`HOST:PORT` the gRPC server is bound to, the host as configured."""
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    @property
    def metrics_port(self) -> int | None:
        """The port of the /metrics endpoint, or None when it is off."""
        self._require_serving()
        return None if self._metrics_endpoint is None else self._metrics_endpoint.port

    def _require_serving(self) -> None:
        if self._state != "serving":
            raise RuntimeError(f"the server is {self._state}, not serving")

    def _interceptors(self) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = []
        if self._tracer_provider is not None:
            interceptors.append(server_interceptor(self._tracer_provider))
        chain: list[CallInterceptor] = [
            RequestContextInterceptor(),
            MetricsInterceptor(self.metrics),
            ErrorInterceptor(),
        ]
        authenticate = self.service.authenticator()
        if authenticate is not None:
            chain.append(AuthInterceptor(authenticate, self.service.exempt_methods))
        # One grpc interceptor for the runtime's own: one wrap per call, not four.
        interceptors.append(InterceptorChain(chain))
        return interceptors

    async def start(self) -> None:
        """Start the service and serve it; see the class docstring for what runs."""
        if self._state != "new":
            raise RuntimeError("a ServiceServer starts once")
        self._state = "starting"
        await self.service.startup()
        try:
            await self._start_serving()
        except BaseException:
            await self._close(grace=0)
            raise
        self._state = "serving"
        self._logger.info(
            "serving",
            address=self.address,
            services=list(self.service.service_names),
            metrics_address=self._metrics_address(),
        )

    async def _start_serving(self) -> None:
        server = grpc.aio.server(
            interceptors=self._interceptors(), options=server_options(self.settings)
        )
        self._server = server
        self.service.register(server)
        # The stubs of grpcio-health-checking do not describe its asyncio servicer.
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        for name in ("", *self.service.service_names):
            await self._health.set(name, _SERVING)
        reflection.enable_server_reflection(
            (*self.service.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self._port = server.add_insecure_port(self.settings.listen)
        await server.start()
        if self.settings.metrics_listen:
            host, port = parse_host_port(self.settings.metrics_listen)
            self._metrics_endpoint = MetricsEndpoint(self.metrics.registry, host, port)
            self._metrics_endpoint.start()

    def _metrics_address(self) -> str | None:
        if self._metrics_endpoint is None:
            return None
        host = self.settings.metrics_listen.rpartition(":")[0]
        return f"{host}:{self._metrics_endpoint.port}"

    async def set_serving(self, service_name: str, *, serving: bool) -> None:
        """Report one of the served services (or "" for the whole server) as
        SERVING or NOT_SERVING; ignored once the server is draining."""
        self._require_serving()
        if service_name not in ("", *self.service.service_names):
            raise ValueError(f"{service_name!r} is not one of {self.service.service_names}")
        await self._health.set(service_name, _SERVING if serving else _NOT_SERVING)

    async def stop(self, grace: float | None = None) -> None:
        """Drain and stop; `grace` defaults to `settings.grace_period_seconds`.

        Does nothing when the server is not serving (never started, or stopped).
        """
        if self._state != "serving":
            return
        grace = self.settings.grace_period_seconds if grace is None else grace
        self._logger.info("draining", grace_period_seconds=grace)
        await self._close(grace, drain=True)
        self._logger.info("stopped")

    async def _close(self, grace: float, *, drain: bool = False) -> None:
        self._state = "stopped"
        try:
            if self._health is not None:
                await self._health.enter_graceful_shutdown()
            try:
                if drain:
                    await self.service.draining()
            finally:
                if self._server is not None:
                    await self._server.stop(grace)
        finally:
            try:
                if self._metrics_endpoint is not None:
                    await self._metrics_endpoint.stop()
            finally:
                await self.service.shutdown()

    async def __aenter__(self) -> ServiceServer:
        """Start serving."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Drain and stop."""
        await self.stop()
