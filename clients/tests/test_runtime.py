"""The service runtime over real grpc.aio servers on loopback: interceptors on all four
RPC shapes, health, reflection, metrics from the real /metrics endpoint, size limits and
the authentication hook. Handlers speak raw bytes, so no generated code is needed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
import structlog
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from mainmast.errors import NotFoundError, UnauthenticatedError
from mainmast.runtime import (
    REQUEST_ID_METADATA_KEY,
    Metadata,
    Principal,
    Service,
    ServiceServer,
    ServiceSettings,
    current_principal,
)
from mainmast.testing import list_services

SERVICE = "mainmast.test.v1.EchoService"
OTHER_SERVICE = "mainmast.test.v1.OtherService"

Context = grpc.aio.ServicerContext[Any, Any]


class EchoService(Service[ServiceSettings]):
    """Echoes bytes over all four shapes; some requests make it fail on purpose.

    b"not-found" raises NotFoundError, b"boom" raises an unexpected ValueError, b"abort"
    aborts with PERMISSION_DENIED itself, b"big" answers more than 4 KiB, b"hang" does not
    answer. Each call records the logging context it ran with.
    """

    name = "echo"
    service_names = (SERVICE, OTHER_SERVICE)

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.seen_contexts: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.answering = asyncio.Event()

    async def startup(self) -> None:
        self.events.append("startup")

    async def draining(self) -> None:
        self.events.append("draining")

    async def shutdown(self) -> None:
        self.events.append("shutdown")

    async def _answer(self, request: bytes, context: Context) -> bytes:
        self.seen_contexts.append(structlog.contextvars.get_contextvars())
        self.answering.set()
        if request == b"not-found":
            raise NotFoundError("User", "42")
        if request == b"boom":
            raise ValueError("the secret detail")
        if request == b"abort":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "aborted by the servicer")
        if request == b"big":
            return b"x" * 8192
        if request == b"own-trailer":
            context.set_trailing_metadata((("x-own", "kept"),))
        if request == b"hang":
            # Until the caller cancels or the deadline passes (the tests that send it
            # do one or the other).
            await asyncio.sleep(3600)
        return request

    async def unary(self, request: bytes, context: Context) -> bytes:
        return await self._answer(request, context)

    async def server_stream(self, request: bytes, context: Context) -> AsyncIterator[bytes]:
        for _ in range(2):
            yield await self._answer(request, context)

    async def server_stream_writes(self, request: bytes, context: Context) -> None:
        for _ in range(2):
            await context.write(await self._answer(request, context))

    async def client_stream(self, requests: AsyncIterator[bytes], context: Context) -> bytes:
        joined = b"".join([request async for request in requests])
        return await self._answer(joined, context)

    async def bidi_stream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield await self._answer(request, context)

    def plain(self, request: bytes, context: Context) -> bytes:
        self.seen_contexts.append(structlog.contextvars.get_contextvars())
        if request == b"not-found":
            raise NotFoundError("User", "42")
        return request

    def generator(self, request: bytes, context: Context) -> Iterator[bytes]:
        for _ in range(2):
            yield self.plain(request, context)

    def unimplemented(self, request: bytes, context: Context) -> bytes:
        # What grpcio-tools generates for each method of a servicer base class.
        context.set_code(grpc.StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")

    def register(self, server: grpc.aio.Server) -> None:
        handlers = {
            "Plain": grpc.unary_unary_rpc_method_handler(self.plain),
            "Generator": grpc.unary_stream_rpc_method_handler(self.generator),
            "Unimplemented": grpc.unary_unary_rpc_method_handler(self.unimplemented),
            "UnimplementedStream": grpc.unary_stream_rpc_method_handler(self.unimplemented),
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ServerStreamWrites": grpc.unary_stream_rpc_method_handler(self.server_stream_writes),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "BidiStream": grpc.stream_stream_rpc_method_handler(self.bidi_stream),
        }
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(SERVICE, handlers),
                grpc.method_handlers_generic_handler(OTHER_SERVICE, {"Unary": handlers["Unary"]}),
            )
        )


async def _good_token(method: str, metadata: Metadata) -> Principal:
    del method  # every authenticated method accepts the same token here
    if ("authorization", "Bearer good") in metadata:
        return Principal(tenant="acme", subject="user-1")
    raise UnauthenticatedError("A valid bearer token is required.")


class GuardedEchoService(EchoService):
    """EchoService behind an authentication hook; OtherService/Unary is exempt."""

    exempt_methods = frozenset({f"/{OTHER_SERVICE}/Unary"})

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self.principals: list[Principal | None] = []

    def authenticator(self) -> Callable[[str, Metadata], Awaitable[Principal]]:
        return _good_token

    async def _answer(self, request: bytes, context: Context) -> bytes:
        try:
            self.principals.append(current_principal())
        except UnauthenticatedError:
            self.principals.append(None)
        return await super()._answer(request, context)


def _settings(**overrides: Any) -> ServiceSettings:
    return ServiceSettings(
        **{"listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0", **overrides}
    )


@pytest.fixture
async def server() -> AsyncIterator[ServiceServer]:
    async with ServiceServer(EchoService(_settings())) as running:
        yield running


@pytest.fixture
async def channel(server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


def _service_of(server: ServiceServer) -> EchoService:
    service = server.service
    assert isinstance(service, EchoService)
    return service


Shape = Callable[[grpc.aio.Channel, bytes, Metadata], Awaitable[tuple[list[bytes], Any]]]


async def _unary(channel: grpc.aio.Channel, request: bytes, metadata: Metadata) -> Any:
    call = channel.unary_unary(f"/{SERVICE}/Unary")(request, metadata=metadata, timeout=10)
    return [await call], call


async def _server_stream(channel: grpc.aio.Channel, request: bytes, metadata: Metadata) -> Any:
    call = channel.unary_stream(f"/{SERVICE}/ServerStream")(request, metadata=metadata, timeout=10)
    return [response async for response in call], call


async def _server_stream_writes(
    channel: grpc.aio.Channel, request: bytes, metadata: Metadata
) -> Any:
    call = channel.unary_stream(f"/{SERVICE}/ServerStreamWrites")(
        request, metadata=metadata, timeout=10
    )
    return [response async for response in call], call


async def _client_stream(channel: grpc.aio.Channel, request: bytes, metadata: Metadata) -> Any:
    async def requests() -> AsyncIterator[bytes]:
        yield request[:2]
        yield request[2:]

    call = channel.stream_unary(f"/{SERVICE}/ClientStream")(
        requests(), metadata=metadata, timeout=10
    )
    return [await call], call


async def _bidi_stream(channel: grpc.aio.Channel, request: bytes, metadata: Metadata) -> Any:
    async def requests() -> AsyncIterator[bytes]:
        yield request

    call = channel.stream_stream(f"/{SERVICE}/BidiStream")(
        requests(), metadata=metadata, timeout=10
    )
    return [response async for response in call], call


SHAPES: dict[str, tuple[Shape, str, str]] = {
    "unary": (_unary, "Unary", "unary"),
    "server stream (yield)": (_server_stream, "ServerStream", "server_stream"),
    "server stream (context.write)": (
        _server_stream_writes,
        "ServerStreamWrites",
        "server_stream",
    ),
    "client stream": (_client_stream, "ClientStream", "client_stream"),
    "bidi stream": (_bidi_stream, "BidiStream", "bidi_stream"),
}


@pytest.fixture(params=list(SHAPES))
def shape(request: pytest.FixtureRequest) -> tuple[Shape, str, str]:
    return SHAPES[request.param]


async def _failing(
    shape: tuple[Shape, str, str], channel: grpc.aio.Channel, request: bytes
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shape[0](channel, request, ())
    return caught.value


async def _metric_samples(server: ServiceServer) -> Iterator[Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics")
    response.raise_for_status()
    return (
        sample
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    )


async def test_every_shape_echoes_and_binds_the_callers_request_id(
    shape: tuple[Shape, str, str], server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    responses, call = await shape[0](channel, b"ping", ((REQUEST_ID_METADATA_KEY, "req-123"),))

    assert b"".join(responses).startswith(b"ping")
    assert (REQUEST_ID_METADATA_KEY, "req-123") in tuple(await call.trailing_metadata())
    seen = _service_of(server).seen_contexts
    assert seen
    assert all(context["request_id"] == "req-123" for context in seen)


async def test_a_request_id_is_generated_when_the_caller_sends_none_and_sent_back(
    shape: tuple[Shape, str, str], server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    _, call = await shape[0](channel, b"ping", ())

    echoed = dict(tuple(await call.trailing_metadata()))[REQUEST_ID_METADATA_KEY]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    assert _service_of(server).seen_contexts[0]["request_id"] == echoed


async def test_an_unacceptable_request_id_is_replaced(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    forged = "x" * 200
    _, call = await _unary(channel, b"ping", ((REQUEST_ID_METADATA_KEY, forged),))

    echoed = dict(tuple(await call.trailing_metadata()))[REQUEST_ID_METADATA_KEY]
    assert echoed != forged
    assert _service_of(server).seen_contexts[0]["request_id"] == echoed


async def test_the_request_id_goes_back_with_an_error_and_beside_the_servicers_trailers(
    shape: tuple[Shape, str, str], channel: grpc.aio.Channel
) -> None:
    error = await _failing(shape, channel, b"not-found")
    _, call = await shape[0](channel, b"own-trailer", ((REQUEST_ID_METADATA_KEY, "req-own"),))

    assert REQUEST_ID_METADATA_KEY in dict(tuple(error.trailing_metadata()))
    trailers = tuple(await call.trailing_metadata())
    assert ("x-own", "kept") in trailers
    assert (REQUEST_ID_METADATA_KEY, "req-own") in trailers


async def test_a_mainmast_error_becomes_its_rich_status_on_every_shape(
    shape: tuple[Shape, str, str], channel: grpc.aio.Channel
) -> None:
    error = await _failing(shape, channel, b"not-found")

    assert error.code() is grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(error)
    assert status is not None
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1
    assert infos[0].reason
    assert "42" in infos[0].metadata.values()


async def test_an_unexpected_exception_becomes_a_bare_internal_status_and_is_logged(
    shape: tuple[Shape, str, str], channel: grpc.aio.Channel
) -> None:
    with capture_logs() as logs:
        error = await _failing(shape, channel, b"boom")

    assert error.code() is grpc.StatusCode.INTERNAL
    leaked = f"{error.details()} {error.trailing_metadata()} {error.debug_error_string()}"
    assert "secret detail" not in leaked
    assert "ValueError" not in leaked
    assert "Traceback" not in leaked
    logged = [entry for entry in logs if entry.get("exc_info")]
    assert len(logged) == 1
    assert logged[0]["log_level"] == "error"
    assert logged[0]["grpc_method"] == f"/{SERVICE}/{shape[1]}"


async def test_an_abort_made_by_the_servicer_passes_through(
    shape: tuple[Shape, str, str], channel: grpc.aio.Channel
) -> None:
    with capture_logs() as logs:
        error = await _failing(shape, channel, b"abort")

    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "aborted by the servicer"
    assert not [entry for entry in logs if entry.get("exc_info")]


async def test_metrics_count_calls_by_method_type_and_code_on_the_metrics_endpoint(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    await _unary(channel, b"ping", ())
    await _unary(channel, b"ping", ())
    await _failing(SHAPES["unary"], channel, b"not-found")
    await _server_stream(channel, b"ping", ())
    await _failing(SHAPES["bidi stream"], channel, b"boom")

    handled = {
        (
            sample.labels["grpc_service"],
            sample.labels["grpc_method"],
            sample.labels["grpc_type"],
            sample.labels["grpc_code"],
        ): sample.value
        for sample in await _metric_samples(server)
        if sample.name == "grpc_server_handled_total"
    }
    assert handled == {
        (SERVICE, "Unary", "unary", "OK"): 2,
        (SERVICE, "Unary", "unary", "NOT_FOUND"): 1,
        (SERVICE, "ServerStream", "server_stream", "OK"): 1,
        (SERVICE, "BidiStream", "bidi_stream", "INTERNAL"): 1,
    }


async def test_metrics_record_latency_by_method_and_code(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    await _client_stream(channel, b"ping", ())

    counts = [
        sample
        for sample in await _metric_samples(server)
        if sample.name == "grpc_server_handling_seconds_count"
    ]
    assert [(sample.labels["grpc_method"], sample.labels["grpc_code"]) for sample in counts] == [
        ("ClientStream", "OK")
    ]
    assert counts[0].value == 1


async def _handled_count(server: ServiceServer, code: str) -> float:
    for sample in await _metric_samples(server):
        if sample.name == "grpc_server_handled_total" and sample.labels["grpc_code"] == code:
            return float(sample.value)
    return 0.0


async def _wait_until_counted(server: ServiceServer, code: str) -> None:
    # The server learns that a call ended asynchronously: wait for it, bounded.
    async with asyncio.timeout(10):
        # The count is read from the /metrics endpoint, which has no event to wait on.
        while await _handled_count(server, code) != 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def _wait_until_started(service: EchoService) -> None:
    await asyncio.wait_for(service.answering.wait(), timeout=10)


async def test_plain_functions_and_generators_are_served_like_async_ones(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    metadata = ((REQUEST_ID_METADATA_KEY, "req-plain"),)
    answer = await channel.unary_unary(f"/{SERVICE}/Plain")(b"ping", metadata=metadata, timeout=10)
    streamed = channel.unary_stream(f"/{SERVICE}/Generator")(b"ping", metadata=metadata, timeout=10)

    assert answer == b"ping"
    assert [response async for response in streamed] == [b"ping", b"ping"]
    assert [context["request_id"] for context in _service_of(server).seen_contexts] == [
        "req-plain"
    ] * 3
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{SERVICE}/Plain")(b"not-found", timeout=10)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def _read_unimplemented_stream(channel: grpc.aio.Channel) -> object:
    return await channel.unary_stream(f"/{SERVICE}/UnimplementedStream")(b"ping", timeout=10).read()


async def _call_unimplemented(channel: grpc.aio.Channel) -> object:
    return await channel.unary_unary(f"/{SERVICE}/Unimplemented")(b"ping", timeout=10)


@pytest.mark.parametrize("attempt", [_call_unimplemented, _read_unimplemented_stream])
async def test_a_method_left_to_the_generated_base_class_answers_unimplemented(
    server: ServiceServer,
    channel: grpc.aio.Channel,
    attempt: Callable[[grpc.aio.Channel], Awaitable[object]],
) -> None:
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
        await attempt(channel)

    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.details() == "Method not implemented!"
    assert logs == []
    assert await _handled_count(server, "UNIMPLEMENTED") == 1


async def test_a_call_the_caller_cancels_is_counted_as_cancelled(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    call = channel.unary_unary(f"/{SERVICE}/Unary")(b"hang", timeout=30)
    await _wait_until_started(_service_of(server))
    call.cancel()

    await _wait_until_counted(server, "CANCELLED")


async def test_a_call_past_its_deadline_is_counted_as_deadline_exceeded(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/{SERVICE}/Unary")(b"hang", timeout=3)

    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await _wait_until_counted(server, "DEADLINE_EXCEEDED")


async def test_health_checks_and_reflection_stay_out_of_metrics_and_logs(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    with capture_logs() as logs:
        await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=10
        )
        await list_services(channel)

    assert not [
        sample
        for sample in await _metric_samples(server)
        if sample.name.startswith("grpc_server_")
        and sample.labels.get("grpc_service", "").startswith("grpc.")
    ]
    assert logs == []
    assert _service_of(server).seen_contexts == []


async def test_health_reports_every_served_service_and_the_server_as_serving(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE, OTHER_SERVICE):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_one_service_can_report_not_serving_while_the_others_serve(
    server: ServiceServer, channel: grpc.aio.Channel
) -> None:
    await server.set_serving(OTHER_SERVICE, serving=False)

    stub = health_pb2_grpc.HealthStub(channel)
    other = await stub.Check(health_pb2.HealthCheckRequest(service=OTHER_SERVICE), timeout=10)
    echo = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
    assert other.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert echo.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(ValueError, match=r"no\.such\.Service"):
        await server.set_serving("no.such.Service", serving=False)


async def test_reflection_lists_the_served_services(channel: grpc.aio.Channel) -> None:
    names = await list_services(channel)

    assert {SERVICE, OTHER_SERVICE, "grpc.health.v1.Health"} <= set(names)


async def test_stop_drains_and_runs_the_shutdown_hook_after_the_startup_hook() -> None:
    service = EchoService(_settings())
    server = ServiceServer(service)
    await server.start()
    assert service.events == ["startup"]

    await server.stop()
    await server.stop()  # stopping twice is harmless

    assert service.events == ["startup", "draining", "shutdown"]
    with pytest.raises(RuntimeError, match="stopped"):
        _ = server.port


async def test_the_serving_log_line_states_the_real_bound_address() -> None:
    with capture_logs() as logs:
        async with ServiceServer(EchoService(_settings())) as server:
            port = server.port
            metrics_port = server.metrics_port

    serving = [entry for entry in logs if entry["event"] == "serving"]
    assert len(serving) == 1
    assert port != 0
    assert serving[0]["address"] == f"127.0.0.1:{port}"
    assert serving[0]["metrics_address"] == f"127.0.0.1:{metrics_port}"
    assert serving[0]["services"] == [SERVICE, OTHER_SERVICE]


async def test_the_metrics_endpoint_can_be_turned_off() -> None:
    async with ServiceServer(EchoService(_settings(metrics_listen=""))) as server:
        assert server.metrics_port is None


async def test_a_port_already_taken_fails_the_start_and_closes_the_service() -> None:
    async with ServiceServer(EchoService(_settings())) as first:
        service = EchoService(_settings(listen=f"127.0.0.1:{first.port}"))
        with pytest.raises(RuntimeError, match="bind"):
            await ServiceServer(service).start()
        assert service.events == ["startup", "shutdown"]


async def test_a_request_above_the_receive_limit_is_resource_exhausted() -> None:
    settings = _settings(max_receive_message_bytes=1024)
    async with (
        ServiceServer(EchoService(settings)) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        assert (await _unary(channel, b"x" * 1000, ()))[0] == [b"x" * 1000]
        error = await _failing(SHAPES["unary"], channel, b"x" * 2048)

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_response_above_the_send_limit_is_resource_exhausted() -> None:
    settings = _settings(max_send_message_bytes=4096)
    async with (
        ServiceServer(EchoService(settings)) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        error = await _failing(SHAPES["unary"], channel, b"big")

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[ServiceServer, grpc.aio.Channel]]:
    async with (
        ServiceServer(GuardedEchoService(_settings())) as server,
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield server, channel


def _guarded_service(server: ServiceServer) -> GuardedEchoService:
    service = server.service
    assert isinstance(service, GuardedEchoService)
    return service


async def test_the_auth_hook_rejects_a_caller_without_credentials(
    shape: tuple[Shape, str, str], guarded: tuple[ServiceServer, grpc.aio.Channel]
) -> None:
    server, channel = guarded
    error = await _failing(shape, channel, b"ping")

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert _guarded_service(server).principals == []
    handled = [
        sample
        for sample in await _metric_samples(server)
        if sample.name == "grpc_server_handled_total"
    ]
    assert [sample.labels["grpc_code"] for sample in handled] == ["UNAUTHENTICATED"]


async def test_the_auth_hook_binds_the_principal_for_the_call(
    shape: tuple[Shape, str, str], guarded: tuple[ServiceServer, grpc.aio.Channel]
) -> None:
    server, channel = guarded
    await shape[0](channel, b"ping", (("authorization", "Bearer good"),))

    service = _guarded_service(server)
    assert set(service.principals) == {Principal(tenant="acme", subject="user-1")}
    assert all(
        (context["tenant"], context["subject"]) == ("acme", "user-1")
        for context in service.seen_contexts
    )


async def test_an_exempt_method_is_served_without_authentication(
    guarded: tuple[ServiceServer, grpc.aio.Channel],
) -> None:
    server, channel = guarded
    response = await channel.unary_unary(f"/{OTHER_SERVICE}/Unary")(b"ping", timeout=10)

    assert response == b"ping"
    service = _guarded_service(server)
    assert service.principals == [None]
    assert "tenant" not in service.seen_contexts[0]


def test_an_exempt_method_must_be_a_full_method_path() -> None:
    class Misdeclared(GuardedEchoService):
        exempt_methods = frozenset({"Unary"})

    with pytest.raises(ValueError, match="full method path"):
        ServiceServer(Misdeclared(_settings()))


def test_a_service_must_declare_what_it_serves() -> None:
    class Nameless(EchoService):
        service_names = ()

    with pytest.raises(TypeError, match="service_names"):
        ServiceServer(Nameless(_settings()))


def test_a_service_is_handed_the_registry_its_metrics_endpoint_serves() -> None:
    service = EchoService(_settings())
    assert service.metrics_registry is None

    server = ServiceServer(service)

    assert service.metrics_registry is server.metrics.registry
