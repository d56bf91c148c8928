"""What every mainmast service process shares: one way to run a gRPC service.

A service declares itself by subclassing `Service` and its settings by subclassing
`ServiceSettings`; `service_cli` turns the pair into its command line::

    from mainmast.runtime import (
        ListenAddress, OptionalListenAddress, Service, ServiceSettings, service_cli)
    from pydantic_settings import SettingsConfigDict

    class AuthSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="MAINMAST_AUTH_")
        listen: ListenAddress = "127.0.0.1:50051"
        metrics_listen: OptionalListenAddress = "127.0.0.1:9151"
        database_url: str | None = None

    class AuthService(Service[AuthSettings]):
        name = "auth"
        service_names = ("mainmast.auth.v1.AuthService",)
        exempt_methods = frozenset({"/mainmast.auth.v1.AuthService/IssueToken"})

        async def startup(self) -> None:          # the service's own resources
            self.pool = DatabasePool(self.settings.database_url)

        def register(self, server: grpc.aio.Server) -> None:
            auth_service_pb2_grpc.add_AuthServiceServicer_to_server(
                AuthServicer(self.pool), server)

        def authenticator(self) -> Authenticate | None:   # optional
            return self.verify_bearer_token     # async (method, metadata) -> Principal

        async def shutdown(self) -> None:
            await self.pool.close()

    main = service_cli(AuthService, AuthSettings)  # `mainmast-auth serve --listen HOST:PORT`

Settings come from the environment (`MAINMAST_AUTH_LISTEN`, `..._METRICS_LISTEN`,
`..._GRACE_PERIOD_SECONDS`, message size limits, keepalive, `..._LOG_LEVEL`,
`..._LOG_JSON`); every field has a working default and the object is frozen.

`serve` configures logging (`mainmast.logging`) and tracing (`mainmast.tracing`, on
when OTEL_EXPORTER_OTLP_ENDPOINT is set), then `run_service` serves, on uvloop's event
loop, until SIGTERM or SIGINT: health turns NOT_SERVING for every service, the service's
`draining()` ends the calls that never end by themselves, new calls are refused,
in-flight calls finish within the grace period, the service's `shutdown()` runs, exit 0.

`ServiceServer(service, tracer_provider=None)` is the same server without signals,
for tests and embedding: `async with ServiceServer(service) as server:` then
`server.port`, `server.metrics_port`, `server.metrics.registry`,
`await server.set_serving(name, serving=False)`, `await server.stop(grace)`.

Each server has: the grpc.health.v1 health service with a status per served service,
server reflection listing them, message size limits and keepalive from the settings,
a Prometheus `/metrics` endpoint on its own port serving the server's own registry
(`grpc_server_handled_total` and `grpc_server_handling_seconds`, labelled with
grpc_service, grpc_method, grpc_type and grpc_code), and these interceptors, outermost
first, each wrapping all four RPC shapes:

- tracing: OpenTelemetry's grpc.aio server interceptor (only when tracing is on);
- `RequestContextInterceptor`: the caller's `x-request-id` (or a new id) bound as
  `request_id` in the logging context and sent back in the trailing metadata, with
  the status (beside any trailing metadata of the servicer's own);
- `MetricsInterceptor`: counts and times each call by method and status code;
- `ErrorInterceptor`: a `MainmastError` becomes its rich status; any other exception
  is logged with its traceback and becomes a bare INTERNAL status (unless the servicer
  set a status code before raising, which is kept);
- `AuthInterceptor`: when the service has an authentication hook, every method not in
  `exempt_methods` is authenticated; the hook raises UnauthenticatedError or returns
  a `Principal`, whose tenant and subject are bound in the logging context and which
  servicers read with `current_principal()`.

Health checks and reflection pass by every interceptor: no metrics, logs or traces.
All interceptors are built on one mechanism (`CallInterceptor`): an async context
manager around the servicer, applied so that grpc drives the wrapper as it would the
servicer; the server installs the runtime's own as one chain, which wraps each call
once rather than once per interceptor. Servicers are async; response streams may yield
or call `context.write`. Plain functions (the generated base classes' UNIMPLEMENTED
methods) run on the event loop, as grpc.aio runs them without a thread pool.
"""

from mainmast.runtime._auth import (
    Authenticate,
    AuthInterceptor,
    Principal,
    current_principal,
)
from mainmast.runtime._cli import service_cli
from mainmast.runtime._errors import ErrorInterceptor
from mainmast.runtime._metrics import MetricsInterceptor, ServerMetrics
from mainmast.runtime._request_context import REQUEST_ID_METADATA_KEY, RequestContextInterceptor
from mainmast.runtime._run import STOP_SIGNALS, run_service
from mainmast.runtime._server import ServiceServer, server_options
from mainmast.runtime._service import Service
from mainmast.runtime._settings import (
    ListenAddress,
    OptionalListenAddress,
    ServiceSettings,
    parse_host_port,
)
from mainmast.runtime._wrapping import CallInterceptor, Metadata, MethodInfo, RpcType

__all__ = [
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
