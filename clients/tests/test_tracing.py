"""Tracing: off unless enabled, server spans for calls served by the runtime, client spans
that carry the trace to the server, trace ids in log lines, and OTLP export to a real
collector on loopback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mainmast.errors import NotFoundError
from mainmast.logging import configure_logging, get_logger, reset_logging
from mainmast.runtime import Service, ServiceServer, ServiceSettings
from mainmast.tracing import client_interceptors, configure_tracing, tracing_enabled

SERVICE = "mainmast.test.v1.TracedService"
OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)

Context = grpc.aio.ServicerContext[Any, Any]


class TracedService(Service[ServiceSettings]):
    """`Hello` logs a line; `Fail` raises NotFoundError, `Boom` an unexpected error;
    `Writes` streams with context.write and `Yields` with yield."""

    name = "traced"
    service_names = (SERVICE,)

    async def hello(self, request: bytes, context: Context) -> bytes:
        get_logger(__name__).info("handling hello")
        return b"hello " + request

    async def fail(self, request: bytes, context: Context) -> bytes:
        raise NotFoundError("User", request.decode())

    async def boom(self, request: bytes, context: Context) -> bytes:
        raise RuntimeError("unexpected")

    async def writes(self, request: bytes, context: Context) -> None:
        get_logger(__name__).info("handling writes")
        await context.write(request)
        await context.write(request)

    async def yields(self, request: bytes, context: Context) -> AsyncIterator[bytes]:
        yield request
        yield request

    def register(self, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "Hello": grpc.unary_unary_rpc_method_handler(self.hello),
                        "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
                        "Boom": grpc.unary_unary_rpc_method_handler(self.boom),
                        "Writes": grpc.unary_stream_rpc_method_handler(self.writes),
                        "Yields": grpc.unary_stream_rpc_method_handler(self.yields),
                    },
                ),
            )
        )


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    configured = configure_tracing("mainmast-traced", exporter=exporter, set_global=False)
    assert configured is not None
    yield configured
    configured.shutdown()


@pytest.fixture
async def server(provider: TracerProvider) -> AsyncIterator[ServiceServer]:
    settings = ServiceSettings(listen="127.0.0.1:0")
    async with ServiceServer(TracedService(settings), tracer_provider=provider) as running:
        yield running


@pytest.fixture
async def channel(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    yield stream
    reset_logging()


def _lines(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    return [
        line for line in map(json.loads, stream.getvalue().splitlines()) if line["event"] == event
    ]


def test_tracing_is_off_unless_enabled() -> None:
    assert not tracing_enabled()
    assert configure_tracing("mainmast-traced") is None


def test_an_otlp_endpoint_in_the_environment_turns_tracing_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")

    assert tracing_enabled()


def test_the_sdk_switch_turns_tracing_off_whatever_else_is_set(
    monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")

    assert configure_tracing("mainmast-traced", exporter=exporter, set_global=False) is None


async def test_a_call_makes_a_server_span_and_its_log_lines_carry_the_trace(
    channel: grpc.aio.Channel, exporter: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    assert await channel.unary_unary(f"/{SERVICE}/Hello")(b"you", timeout=10) == b"hello you"

    spans = exporter.get_finished_spans()
    assert [(span.name, span.kind) for span in spans] == [
        (f"/{SERVICE}/Hello", trace.SpanKind.SERVER)
    ]
    span_context = spans[0].get_span_context()
    assert span_context is not None
    (handled,) = _lines(log_lines, "handling hello")
    assert handled["trace_id"] == format(span_context.trace_id, "032x")
    assert handled["span_id"] == format(span_context.span_id, "016x")
    assert spans[0].resource.attributes["service.name"] == "mainmast-traced"


async def test_client_interceptors_carry_the_trace_to_the_server(
    server: ServiceServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{server.port}", interceptors=client_interceptors(provider)
    ) as channel:
        await channel.unary_unary(f"/{SERVICE}/Hello")(b"you", timeout=10)

    by_kind = {span.kind: span for span in exporter.get_finished_spans()}
    client, served = by_kind[trace.SpanKind.CLIENT], by_kind[trace.SpanKind.SERVER]
    client_context = client.get_span_context()
    assert client_context is not None
    assert served.parent is not None
    assert served.parent.trace_id == client_context.trace_id
    assert served.parent.span_id == client_context.span_id


@pytest.mark.parametrize("method", ["Writes", "Yields"])
async def test_response_streams_are_traced_whether_they_write_or_yield(
    channel: grpc.aio.Channel, exporter: InMemorySpanExporter, method: str
) -> None:
    call = channel.unary_stream(f"/{SERVICE}/{method}")(b"part", timeout=10)

    assert [response async for response in call] == [b"part", b"part"]
    assert [span.name for span in exporter.get_finished_spans()] == [f"/{SERVICE}/{method}"]


@pytest.mark.parametrize(
    ("method", "code", "span_status"),
    [
        # OpenTelemetry's conventions: a caller's mistake is not the server's error.
        ("Fail", grpc.StatusCode.NOT_FOUND, trace.StatusCode.UNSET),
        ("Boom", grpc.StatusCode.INTERNAL, trace.StatusCode.ERROR),
    ],
)
async def test_the_status_code_of_a_failed_call_is_recorded_on_its_span(
    channel: grpc.aio.Channel,
    exporter: InMemorySpanExporter,
    method: str,
    code: grpc.StatusCode,
    span_status: trace.StatusCode,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{SERVICE}/{method}")(b"42", timeout=10)

    assert caught.value.code() is code
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]
    assert span.status.status_code is span_status


async def test_health_checks_are_not_traced(
    server: ServiceServer, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{server.port}", interceptors=client_interceptors(provider)
    ) as traced_channel:
        await health_pb2_grpc.HealthStub(traced_channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=10
        )

    assert exporter.get_finished_spans() == ()


def test_without_a_provider_and_untraced_a_channel_gets_no_interceptors() -> None:
    assert client_interceptors() == []


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector that keeps what it receives."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.received = threading.Event()

    def Export(  # noqa: N802 -- the name the OTLP service defines
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        self.received.set()
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_go_to_the_otlp_endpoint_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        provider = configure_tracing("mainmast-exported", set_global=False)
        assert provider is not None
        with provider.get_tracer("test").start_as_current_span("exported work"):
            pass
        assert provider.force_flush(timeout_millis=30_000)
        provider.shutdown()
    finally:
        server.stop(grace=None)

    assert collector.received.is_set()
    (resource_spans,) = collector.requests[0].resource_spans
    attributes = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
    assert attributes["service.name"] == "mainmast-exported"
    assert [span.name for span in resource_spans.scope_spans[0].spans] == ["exported work"]


GLOBAL_SETUP = """
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from mainmast.tracing import client_interceptors, configure_tracing

assert client_interceptors() == []
first = configure_tracing("mainmast-once", exporter=InMemorySpanExporter())
second = configure_tracing("mainmast-twice", exporter=InMemorySpanExporter())
assert first is not None and second is first, (first, second)
assert trace.get_tracer_provider() is first
assert len(client_interceptors()) == 4
print("set up once")
"""


def test_tracing_is_set_up_once_per_process() -> None:
    # In a process of its own: OpenTelemetry's global provider cannot be unset.
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_SETUP],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={name: value for name, value in os.environ.items() if not name.startswith("OTEL_")},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "set up once"
