"""Prometheus metrics of a server: calls by method and code, latency, and /metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from ._wrapping import CallInterceptor, MethodInfo

_LABELS = ("grpc_service", "grpc_method", "grpc_type", "grpc_code")


class ServerMetrics:
    """The metrics of one server, on a registry of its own.

    `grpc_server_handled_total` counts finished calls and
    `grpc_server_handling_seconds` measures their latency, both labelled with
    grpc_service, grpc_method, grpc_type and grpc_code (the names grpc-prometheus
    uses, so existing dashboards work). The registry is the server's, not the
    process-global one, so two servers in one process never share counts.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        """The registry these metrics are registered on; /metrics serves it."""
        self.handled = Counter(
            "grpc_server_handled",
            "Calls completed on the server, whatever their status.",
            _LABELS,
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of a call to its end on the server, in seconds.",
            _LABELS,
            registry=self.registry,
        )
        # One entry per (service, method, type, code) seen: bounded by the methods served.
        self._children: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}

    def observe(self, info: MethodInfo, code: grpc.StatusCode, seconds: float) -> None:
        """Record one finished call."""
        labels = (info.service, info.method_name, info.rpc_type, code.name)
        # The labelled children, looked up once per label set: `labels()` validates and
        # locks on every call, a measurable share of a small call's cost.
        children = self._children.get(labels)
        if children is None:
            children = (self.handled.labels(*labels), self.handling_seconds.labels(*labels))
            self._children[labels] = children
        handled, handling_seconds = children
        handled.inc()
        handling_seconds.observe(seconds)


def outcome_code(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None
) -> grpc.StatusCode:
    """The status a call ended with, from its context and what escaped the servicer."""
    # code() is None until the servicer sets a code or aborts, although the stubs
    # promise a StatusCode.
    code: grpc.StatusCode | None = context.code()
    if error is None or isinstance(error, grpc.aio.AbortError):
        return code if code is not None else grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        # grpc cancels the handler both when the caller cancels and when the
        # deadline passes; the time left tells which.
        if context.time_remaining() is not None and context.time_remaining() <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    # What grpc answers for an exception nothing translated.
    return grpc.StatusCode.UNKNOWN


class MetricsInterceptor(CallInterceptor):
    """Count every call and time it, by service, method, RPC type and status code."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    @asynccontextmanager
    async def around(
        self, info: MethodInfo, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """Record the call's status code and duration when it ends."""
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._metrics.observe(info, outcome_code(context, error), time.perf_counter() - started)


class MetricsEndpoint:
    """An HTTP server answering `GET /metrics` from one registry, in a thread.

    prometheus_client's own server, which serves only the registry it is given.
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (the one asked for, or the one chosen for port 0)."""
        if self._server is None:
            raise RuntimeError("the metrics endpoint is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and start serving."""
        self._server, self._thread = start_http_server(
            self._port, addr=self._host, registry=self._registry
        )

    async def stop(self) -> None:
        """Stop serving and release the port."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        # shutdown() waits for the serving loop to notice, up to its poll interval.
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        await asyncio.to_thread(thread.join)
