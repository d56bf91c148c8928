"""OpenTelemetry tracing for mainmast processes: set up once, and off unless asked for.

Tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, in which case spans go in batches to
that collector over OTLP/gRPC (the exporter reads the rest of its `OTEL_EXPORTER_OTLP_*`
settings itself), or when an exporter is passed in, as tests do with an
`InMemorySpanExporter`. `OTEL_SDK_DISABLED=true` turns it off whatever else is set.

    provider = configure_tracing("mainmast-auth")      # None when tracing is off

Servers: `mainmast.runtime` adds `server_interceptor(provider)` (OpenTelemetry's own
grpc.aio server interceptor) in front of its interceptors, so each call runs inside a
server span that continues the caller's trace. Clients: channels the SDK builds pass
`client_interceptors(provider)` to `grpc.aio.insecure_channel(..., interceptors=...)`,
which starts a client span per call and sends `traceparent` along. Health checks and
reflection are never traced. While a span is current, mainmast.logging adds its
`trace_id` and `span_id` to every log line.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import grpc.aio
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters
from opentelemetry.instrumentation.grpc._aio_server import OpenTelemetryAioServerInterceptor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from mainmast._grpc_infrastructure import INFRASTRUCTURE_SERVICES

__all__ = ["client_interceptors", "configure_tracing", "server_interceptor", "tracing_enabled"]

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_INSTRUMENTATION_NAME = "mainmast"


def tracing_enabled(*, exporter: SpanExporter | None = None) -> bool:
    """Tell whether `configure_tracing` would turn tracing on, from the environment."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return exporter is not None or any(os.environ.get(name) for name in _ENDPOINT_VARIABLES)


def configure_tracing(
    service_name: str,
    *,
    exporter: SpanExporter | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Set up tracing for this process and return its provider, or None when off.

    `exporter`, when given, turns tracing on and receives each span as it ends
    (tests pass an `InMemorySpanExporter`); otherwise spans go in batches to the
    OTLP endpoint of the environment. With `set_global` (the default) the provider
    also becomes OpenTelemetry's global one; OpenTelemetry allows that once per
    process, so when a global provider is already set up this returns it unchanged.
    Tests pass `set_global=False` to get a provider of their own each time.
    """
    if not tracing_enabled(exporter=exporter):
        return None
    current = trace.get_tracer_provider()
    if set_global and isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def _traced_calls() -> Any:
    # OpenTelemetry's filters read the method from server and client call details alike.
    return filters.negate(
        filters.any_of(*(filters.service_name(name) for name in sorted(INFRASTRUCTURE_SERVICES)))
    )


# opentelemetry-instrumentation-grpc has no type annotations: its calls are marked.
class _ServerInterceptor(OpenTelemetryAioServerInterceptor):
    """OpenTelemetry's grpc.aio server interceptor, for every kind of stream handler.

    Upstream wraps every response-streaming handler in an async generator, which breaks
    handlers written as coroutines that call `context.write` (open-telemetry/
    opentelemetry-python-contrib issue 3066). Those are awaited like unary handlers.
    """

    def _intercept_aio_server_stream(self, behavior: Any, handler_call_details: Any) -> Any:
        if inspect.iscoroutinefunction(behavior):
            return self._intercept_aio_server_unary(behavior, handler_call_details)  # type: ignore[no-untyped-call]
        return super()._intercept_aio_server_stream(behavior, handler_call_details)  # type: ignore[no-untyped-call]


def server_interceptor(tracer_provider: TracerProvider) -> grpc.aio.ServerInterceptor[Any, Any]:
    """The grpc.aio server interceptor that starts a server span for each call."""
    tracer = trace.get_tracer(_INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
    interceptor: grpc.aio.ServerInterceptor[Any, Any] = _ServerInterceptor(  # type: ignore[no-untyped-call]
        tracer, filter_=_traced_calls()
    )
    return interceptor


def client_interceptors(
    tracer_provider: TracerProvider | None = None,
) -> list[grpc.aio.ClientInterceptor]:
    """The grpc.aio client interceptors for a channel: a client span per call.

    With no provider given, the global one is used when tracing is set up, and the
    list is empty when it is not, so a channel costs nothing extra untraced.
    """
    if tracer_provider is None:
        current = trace.get_tracer_provider()
        if not isinstance(current, TracerProvider):
            return []
        tracer_provider = current
    interceptors: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        tracer_provider=tracer_provider, filter_=_traced_calls()
    )
    return interceptors
