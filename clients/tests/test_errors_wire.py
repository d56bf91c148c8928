"""Errors over a real grpc.aio server on loopback, behind the runtime's ErrorInterceptor.

One server serves the module. Each call's request names what the servicer does (raise an
error, abort, hang), armed by the test just before it calls; handlers speak raw bytes, so
no generated code is needed.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from google.rpc import status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from mainmast.errors import (
    CONCEALED_INTERNAL_MESSAGE,
    ERROR_CLASSES,
    STATUS_BUDGET_BYTES,
    AlreadyExistsError,
    DeadlineExceededError,
    FieldViolation,
    InternalError,
    MainmastError,
    NotFoundError,
    PermissionDeniedError,
    QuotaViolation,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    ValidationError,
    error_from_rpc_error,
    translate_rpc_errors,
)
from mainmast.runtime import ErrorInterceptor

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICE = "mainmast.test.v1.FailingService"
DETAILS_KEY = "grpc-status-details-bin"

Context = grpc.aio.ServicerContext[Any, Any]
Behaviour = Callable[[Context], Awaitable[None]]
T = TypeVar("T")


class TokenExpiredError(UnauthenticatedError):
    """A service's own case of a built-in class, recognised by its reason."""

    default_reason = "TOKEN_EXPIRED"
    default_domain = "auth.mainmast.dev"


class QuotaExhaustedError(RateLimitedError):
    """A subclass whose constructor takes arguments of its own."""

    default_reason = "QUOTA_EXHAUSTED"

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"Tenant {tenant} is out of quota.", metadata={"tenant": tenant}, retry_after=60
        )


class FirstClaimantError(NotFoundError):
    default_reason = "CLAIMED_TWICE"


class SecondClaimantError(NotFoundError):
    default_reason = "CLAIMED_TWICE"


RESERVED_REASONS = frozenset({"TOKEN_EXPIRED", "QUOTA_EXHAUSTED", "CLAIMED_TWICE"})


class FailingServicer:
    """Every shape fails the way the test armed for its request key."""

    def __init__(self) -> None:
        self._armed: dict[bytes, Behaviour] = {}

    def arm(self, behaviour: Behaviour) -> bytes:
        key = uuid.uuid4().hex.encode()
        self._armed[key] = behaviour
        return key

    async def _fail(self, key: bytes, context: Context) -> None:
        await self._armed.pop(key)(context)

    async def unary(self, request: bytes, context: Context) -> bytes:
        await self._fail(request, context)
        return b"unreachable"

    async def server_stream(self, request: bytes, context: Context) -> AsyncIterator[bytes]:
        yield b"first"  # the error comes in the middle of the stream
        await self._fail(request, context)

    async def client_stream(self, requests: AsyncIterator[bytes], context: Context) -> bytes:
        keys = [request async for request in requests]
        await self._fail(keys[0], context)
        return b"unreachable"

    async def bidi_stream(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield b"ack"
            await self._fail(request, context)


class Wire:
    """The running server, a channel to it, and the servicer to arm."""

    def __init__(self, servicer: FailingServicer, port: int, channel: grpc.aio.Channel) -> None:
        self.servicer = servicer
        self.port = port
        self.channel = channel


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wire() -> AsyncIterator[Wire]:
    servicer = FailingServicer()
    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(servicer.unary),
                    "ServerStream": grpc.unary_stream_rpc_method_handler(servicer.server_stream),
                    "ClientStream": grpc.stream_unary_rpc_method_handler(servicer.client_stream),
                    "BidiStream": grpc.stream_stream_rpc_method_handler(servicer.bidi_stream),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Wire(servicer, port, channel)
    finally:
        await server.stop(None)


async def _unary(channel: grpc.aio.Channel, key: bytes, deadline: float) -> None:
    await channel.unary_unary(f"/{SERVICE}/Unary")(key, timeout=deadline)


async def _server_stream(channel: grpc.aio.Channel, key: bytes, deadline: float) -> None:
    async for _ in channel.unary_stream(f"/{SERVICE}/ServerStream")(key, timeout=deadline):
        pass


async def _client_stream(channel: grpc.aio.Channel, key: bytes, deadline: float) -> None:
    async def requests() -> AsyncIterator[bytes]:
        yield key

    await channel.stream_unary(f"/{SERVICE}/ClientStream")(requests(), timeout=deadline)


async def _bidi_stream(channel: grpc.aio.Channel, key: bytes, deadline: float) -> None:
    async def requests() -> AsyncIterator[bytes]:
        yield key

    async for _ in channel.stream_stream(f"/{SERVICE}/BidiStream")(requests(), timeout=deadline):
        pass


Call = Callable[[grpc.aio.Channel, bytes, float], Awaitable[None]]
SHAPES: dict[str, Call] = {
    "unary": _unary,
    "server stream": _server_stream,
    "client stream": _client_stream,
    "bidi stream": _bidi_stream,
}


def raising(exc: BaseException) -> Behaviour:
    async def behaviour(context: Context) -> None:
        del context
        raise exc

    return behaviour


async def _failed_call(wire: Wire, behaviour: Behaviour, shape: str = "unary") -> grpc.RpcError:
    key = wire.servicer.arm(behaviour)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await SHAPES[shape](wire.channel, key, 10)
    return caught.value


async def _round_trip(wire: Wire, error: BaseException, shape: str = "unary") -> MainmastError:
    return error_from_rpc_error(await _failed_call(wire, raising(error), shape))


def _carried(error: MainmastError) -> tuple[type[MainmastError], Any]:
    return type(error), error.fields()


def _example_of(error_class: type[MainmastError]) -> MainmastError:
    """An instance of `error_class` carrying everything its class can carry."""
    common: dict[str, Any] = {
        "reason": "SOMETHING_SPECIFIC",
        "domain": "auth.mainmast.dev",
        "metadata": {"tenant": "acme", "empty": "", "ünïcode": "✓ 🚢"},
    }
    if error_class is ValidationError:
        return ValidationError(
            "The request is not valid.",
            field_violations=[
                FieldViolation("email", "not an address", "INVALID_FORMAT"),
                FieldViolation("items[2].name", "required"),
            ],
            **common,
        )
    if error_class is RateLimitedError:
        return RateLimitedError(
            "Slow down.",
            retry_after=timedelta(seconds=2, microseconds=500_000),
            quota_violations=[QuotaViolation("tenant:acme", "60 requests per minute")],
            **common,
        )
    if error_class is UnavailableError:
        return UnavailableError("The database is down.", retry_after=1, **common)
    if error_class in {NotFoundError, AlreadyExistsError}:
        return error_class("User", "42", **common)  # type: ignore[call-arg]
    return error_class(f"A {error_class.__name__}.", **common)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=lambda cls: cls.__name__)
async def test_every_class_comes_back_as_itself_with_all_it_carries_on_every_shape(
    wire: Wire, error_class: type[MainmastError], shape: str
) -> None:
    sent = _example_of(error_class)

    received = await _round_trip(wire, sent, shape)

    assert _carried(received) == _carried(sent)


@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=lambda cls: cls.__name__)
async def test_every_class_comes_back_with_its_default_reason_and_domain(
    wire: Wire, error_class: type[MainmastError]
) -> None:
    sent = error_class("plain")

    received = await _round_trip(wire, sent)

    assert type(received) is error_class
    assert (received.reason, received.domain) == (error_class.default_reason, "mainmast.dev")


async def test_the_seed_form_arrives_as_not_found_with_type_and_id(wire: Wire) -> None:
    call_error = await _failed_call(wire, raising(NotFoundError("User", "42")))
    received = error_from_rpc_error(call_error)

    assert call_error.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert isinstance(received, NotFoundError)
    assert received.metadata == {"resource_type": "User", "resource_id": "42"}
    assert received.message == "User '42' was not found."


explicit_reasons = st.from_regex(r"[A-Z][A-Z0-9_]{1,30}[A-Z0-9]", fullmatch=True).filter(
    lambda reason: reason not in RESERVED_REASONS
)
# Bounded so that every status fits the trailer budget however wide its characters
# (at most about 3 KiB of 7); what happens beyond is the next property's business.
texts = st.text(max_size=40)
short_texts = st.text(max_size=12)
metadata_maps = st.dictionaries(short_texts, st.text(max_size=20), max_size=10)
delays = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))


@st.composite
def mainmast_errors(draw: st.DrawFn) -> MainmastError:
    """Any class of the table, with any message, reason, domain, metadata and extras."""
    error_class = draw(st.sampled_from(ERROR_CLASSES))
    message = draw(texts)
    common: dict[str, Any] = {
        "reason": draw(st.none() | explicit_reasons),
        "domain": draw(st.none() | st.text(min_size=1, max_size=20)),
        "metadata": draw(metadata_maps),
    }
    if error_class is ValidationError:
        violations = st.builds(
            FieldViolation, short_texts, short_texts, st.just("") | explicit_reasons
        )
        return ValidationError(
            message, field_violations=draw(st.lists(violations, max_size=4)), **common
        )
    if error_class is RateLimitedError:
        violations = st.builds(QuotaViolation, short_texts, short_texts)
        return RateLimitedError(
            message,
            retry_after=draw(st.none() | delays),
            quota_violations=draw(st.lists(violations, max_size=4)),
            **common,
        )
    if error_class is UnavailableError:
        return UnavailableError(message, retry_after=draw(st.none() | delays), **common)
    return error_class(message, **common)


@settings(max_examples=50, deadline=None)
@given(sent=mainmast_errors(), shape=st.sampled_from(list(SHAPES)))
async def test_any_error_round_trips_exactly(wire: Wire, sent: MainmastError, shape: str) -> None:
    received = await _round_trip(wire, sent, shape)

    assert _carried(received) == _carried(sent)


def _sized(elements: Callable[[int], st.SearchStrategy[T]], most: int) -> st.SearchStrategy[T]:
    # A size drawn first and then held to: left alone, hypothesis keeps collections small.
    return st.integers(0, most).flatmap(elements)


@settings(max_examples=25, deadline=None)
@given(
    error_class=st.sampled_from(ERROR_CLASSES),
    message=_sized(lambda size: st.text(min_size=size, max_size=size), 3000),
    metadata=_sized(
        lambda size: st.dictionaries(
            st.text(max_size=40), st.text(max_size=200), min_size=size, max_size=size
        ),
        300,
    ),
)
async def test_a_status_too_big_for_the_trailers_keeps_its_identity_and_says_what_it_left_out(
    wire: Wire, error_class: type[MainmastError], message: str, metadata: dict[str, str]
) -> None:
    sent = error_class(message, reason="BIG_ONE", metadata=metadata)

    call_error = await _failed_call(wire, raising(sent))
    received = error_from_rpc_error(call_error)

    # The client got the servicer's status, not gRPC's RESOURCE_EXHAUSTED for big trailers.
    assert call_error.code() is error_class.grpc_code  # type: ignore[attr-defined]
    assert type(received) is error_class
    assert (received.reason, received.domain) == ("BIG_ONE", "mainmast.dev")
    assert received.metadata.items() <= sent.metadata.items()
    if received.metadata != sent.metadata:
        assert received.message.endswith(" [some error details were left out]")
    elif received.message != sent.message:
        assert received.message.endswith("...")
        assert sent.message.startswith(received.message.removesuffix("..."))


async def test_a_huge_validation_error_arrives_within_the_budget_with_its_metadata(
    wire: Wire,
) -> None:
    sent = ValidationError(
        "x" * 100_000,
        field_violations=[FieldViolation(f"items[{i}]", "é" * 50) for i in range(2000)],
        metadata={"tenant": "acme", "request": "bulk-import"},
    )

    call_error = await _failed_call(wire, raising(sent), "bidi stream")
    received = error_from_rpc_error(call_error)

    trailers = dict(call_error.trailing_metadata())  # type: ignore[attr-defined]
    assert len(trailers[DETAILS_KEY]) <= STATUS_BUDGET_BYTES
    assert isinstance(received, ValidationError)
    assert received.metadata == sent.metadata
    assert 0 < len(received.field_violations) < len(sent.field_violations)
    assert received.field_violations == sent.field_violations[: len(received.field_violations)]
    assert received.message.startswith("x" * 1000)
    assert received.message.endswith("... [some error details were left out]")


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_an_unknown_exception_arrives_as_internal_with_none_of_its_text(
    wire: Wire, shape: str
) -> None:
    call_error = await _failed_call(wire, raising(KeyError("the password is hunter2")), shape)
    received = error_from_rpc_error(call_error)

    assert isinstance(received, InternalError)
    assert received.message == CONCEALED_INTERNAL_MESSAGE
    assert (received.reason, received.domain, received.metadata) == (
        "INTERNAL",
        "mainmast.dev",
        {},
    )
    seen = repr(
        (
            call_error.details(),  # type: ignore[attr-defined]
            call_error.trailing_metadata(),  # type: ignore[attr-defined]
            call_error.debug_error_string(),  # type: ignore[attr-defined]
        )
    )
    assert "hunter2" not in seen
    assert "KeyError" not in seen
    assert "Traceback" not in seen


def _aborting(
    code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, Any], ...] = ()
) -> Behaviour:
    async def behaviour(context: Context) -> None:
        await context.abort(code, details, trailing_metadata)

    return behaviour


async def test_a_status_without_details_comes_back_as_the_class_of_its_code(wire: Wire) -> None:
    received = error_from_rpc_error(
        await _failed_call(wire, _aborting(grpc.StatusCode.PERMISSION_DENIED, "Not yours."))
    )

    assert isinstance(received, PermissionDeniedError)
    assert (received.message, received.reason, received.domain, received.metadata) == (
        "Not yours.",
        "PERMISSION_DENIED",
        "mainmast.dev",
        {},
    )


async def test_details_whose_code_differs_from_the_calls_are_ignored(wire: Wire) -> None:
    foreign = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="elsewhere")
    behaviour = _aborting(
        grpc.StatusCode.UNAVAILABLE, "rewritten", ((DETAILS_KEY, foreign.SerializeToString()),)
    )

    received = error_from_rpc_error(await _failed_call(wire, behaviour))

    assert isinstance(received, UnavailableError)
    assert (received.message, received.reason) == ("rewritten", "UNAVAILABLE")


async def test_details_that_do_not_parse_are_ignored(wire: Wire) -> None:
    behaviour = _aborting(
        grpc.StatusCode.ALREADY_EXISTS, "twice", ((DETAILS_KEY, b"\xff\xfe not a status"),)
    )

    received = error_from_rpc_error(await _failed_call(wire, behaviour))

    assert isinstance(received, AlreadyExistsError)
    assert (received.message, received.reason) == ("twice", "ALREADY_EXISTS")


async def test_the_callers_own_deadline_becomes_deadline_exceeded(wire: Wire) -> None:
    async def hang(context: Context) -> None:
        del context
        await asyncio.Event().wait()  # until the deadline cancels the call

    key = wire.servicer.arm(hang)
    with pytest.raises(DeadlineExceededError) as caught:
        async with translate_rpc_errors():
            await _unary(wire.channel, key, 0.2)

    assert caught.value.reason == "DEADLINE_EXCEEDED"
    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port}") as channel:
        with pytest.raises(UnavailableError) as caught:
            async with translate_rpc_errors():
                await _unary(channel, b"anything", 10)

    assert caught.value.reason == "UNAVAILABLE"
    assert caught.value.domain == "mainmast.dev"


async def test_a_method_the_server_does_not_have_is_unimplemented(wire: Wire) -> None:
    with pytest.raises(UnimplementedError):
        async with translate_rpc_errors():
            await wire.channel.unary_unary(f"/{SERVICE}/Missing")(b"", timeout=10)


async def test_translate_raises_the_mainmast_error_from_the_rpc_error(wire: Wire) -> None:
    key = wire.servicer.arm(raising(NotFoundError("User", "42")))

    with pytest.raises(NotFoundError) as caught:
        async with translate_rpc_errors():
            await _unary(wire.channel, key, 10)

    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)
    assert caught.value.__suppress_context__
    assert caught.value.metadata["resource_id"] == "42"


async def test_translate_works_with_a_plain_with_around_a_sync_channel(wire: Wire) -> None:
    key = wire.servicer.arm(
        raising(ValidationError("bad", field_violations=[FieldViolation("name", "required")]))
    )

    def call_with_a_sync_channel() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{wire.port}") as channel, translate_rpc_errors():
            channel.unary_unary(f"/{SERVICE}/Unary")(key, timeout=10)

    with pytest.raises(ValidationError) as caught:
        await asyncio.to_thread(call_with_a_sync_channel)

    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert not isinstance(caught.value.__cause__, grpc.aio.AioRpcError)
    assert caught.value.field_violations == (FieldViolation("name", "required"),)


async def test_translate_lets_other_exceptions_and_success_through() -> None:
    original = ValueError("not a gRPC error")
    with pytest.raises(ValueError, match="not a gRPC error") as caught:
        async with translate_rpc_errors():
            raise original
    assert caught.value is original

    with translate_rpc_errors():
        outcome = "done"
    assert outcome == "done"


async def test_a_bare_rpc_error_is_a_mainmast_error_of_unknown_kind() -> None:
    with pytest.raises(MainmastError) as caught, translate_rpc_errors():
        raise grpc.RpcError

    assert type(caught.value) is MainmastError
    assert caught.value.reason == "UNKNOWN"


async def test_a_subclass_with_its_own_reason_comes_back_as_itself(wire: Wire) -> None:
    expired = await _round_trip(wire, TokenExpiredError("The token expired."))
    exhausted = await _round_trip(wire, QuotaExhaustedError("acme"), "server stream")

    assert type(expired) is TokenExpiredError
    assert (expired.reason, expired.domain) == ("TOKEN_EXPIRED", "auth.mainmast.dev")
    assert type(exhausted) is QuotaExhaustedError
    assert exhausted.metadata == {"tenant": "acme"}
    assert exhausted.retry_after == timedelta(seconds=60)


async def test_a_subclass_raised_with_another_reason_comes_back_as_its_table_class(
    wire: Wire,
) -> None:
    received = await _round_trip(wire, TokenExpiredError("expired", reason="SOMETHING_ELSE"))

    assert type(received) is UnauthenticatedError
    assert received.reason == "SOMETHING_ELSE"


async def test_a_reason_claimed_by_two_unrelated_subclasses_gives_the_table_class(
    wire: Wire,
) -> None:
    received = await _round_trip(wire, FirstClaimantError("which one?"))

    assert type(received) is NotFoundError
    assert received.reason == "CLAIMED_TWICE"
