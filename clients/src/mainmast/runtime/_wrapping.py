"""The one mechanism every server interceptor of the runtime is built on.

An interceptor states what happens around a call as an async context manager
(`around`); this module wraps the method handler so that context manager encloses the
servicer's behaviour for all four RPC shapes. grpc.aio decides how to drive a handler
from the kind of function it is (a coroutine function returns a response or uses
`context.write`, an async generator function yields responses), so each wrapper keeps
the kind of the function it wraps.

`InterceptorChain` runs several interceptors as one: grpc.aio awaits each interceptor
in turn and each would wrap the handler again, which on a small server costs as much
per call as a cheap servicer; the chain wraps once and nests the `around`s inside, in
the order given, exactly as the separate interceptors would nest. The kind of each
servicer function is worked out once per function, not per call.

Health checks and reflection are infrastructure: they stay out of every interceptor
(see mainmast._grpc_infrastructure, which tracing reads as well).
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import grpc
import grpc.aio

from mainmast._grpc_infrastructure import is_infrastructure_method, split_method

RpcType = Literal["unary", "client_stream", "server_stream", "bidi_stream"]
"""The shape of a method, named as grpc-prometheus names it in the `grpc_type` label."""

Metadata = tuple[tuple[str, str | bytes], ...]
"""Invocation metadata as key/value pairs, in the order the client sent them."""

_Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """What is known about a call before it runs: the method it targets and how."""

    method: str
    """The full method path, `/package.Service/Method`."""
    service: str
    """The full service name, `package.Service`."""
    method_name: str
    """The bare method name, `Method`."""
    rpc_type: RpcType
    """The RPC shape."""
    invocation_metadata: Metadata
    """The metadata the client sent."""


def _rpc_type(handler: grpc.RpcMethodHandler[Any, Any]) -> RpcType:
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


AroundCall = Callable[
    [MethodInfo, grpc.aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[None]
]

BehaviourKind = Literal["async_generator", "coroutine", "generator", "plain"]
"""How grpc.aio drives a servicer function, which its wrapper must keep."""


def behaviour_kind(behaviour: _Behaviour) -> BehaviourKind:
    """The kind of function `behaviour` is, as grpc.aio tells them apart."""
    if inspect.isasyncgenfunction(behaviour):
        return "async_generator"
    if inspect.iscoroutinefunction(behaviour):
        return "coroutine"
    if inspect.isgeneratorfunction(behaviour):
        return "generator"
    return "plain"


def wrap_behaviour(
    behaviour: _Behaviour,
    info: MethodInfo,
    around: AroundCall,
    kind: BehaviourKind | None = None,
) -> _Behaviour:
    """Return `behaviour` enclosed in `around`, as a function grpc drives the same way.

    `kind` is `behaviour_kind(behaviour)`, when the caller knows it already."""
    kind = behaviour_kind(behaviour) if kind is None else kind
    if kind == "async_generator":

        async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with around(info, context):
                async for response in behaviour(request, context):
                    yield response

        return streaming

    if kind == "coroutine":
        # A coroutine function either returns the single response or, for a
        # response stream, writes with context.write and returns None: both are
        # awaited the same way.
        async def awaited(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with around(info, context):
                return await behaviour(request, context)

        return awaited

    if kind == "generator":

        async def iterated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with around(info, context):
                for response in behaviour(request, context):
                    yield response

        return iterated

    # A plain function, such as the methods of a generated servicer base class that
    # answer UNIMPLEMENTED. grpc.aio, given no thread pool, runs it on the event loop
    # as well.
    async def called(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with around(info, context):
            return behaviour(request, context)

    return called


_HANDLER_FACTORIES: dict[RpcType, tuple[str, Callable[..., grpc.RpcMethodHandler[Any, Any]]]] = {
    "unary": ("unary_unary", grpc.unary_unary_rpc_method_handler),
    "server_stream": ("unary_stream", grpc.unary_stream_rpc_method_handler),
    "client_stream": ("stream_unary", grpc.stream_unary_rpc_method_handler),
    "bidi_stream": ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    handler_call_details: grpc.HandlerCallDetails,
    around: AroundCall | Sequence[AroundCall],
    kinds: dict[_Behaviour, BehaviourKind] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """Return a copy of `handler` whose behaviour runs inside `around` (or inside each of
    several, the first outermost).

    `kinds`, when given, keeps the `behaviour_kind` of each servicer function from one
    call to the next, so that it is worked out once per function."""
    rpc_type = _rpc_type(handler)
    service, method_name = split_method(handler_call_details.method)
    info = MethodInfo(
        method=handler_call_details.method,
        service=service,
        method_name=method_name,
        rpc_type=rpc_type,
        invocation_metadata=tuple(handler_call_details.invocation_metadata or ()),
    )
    attribute, factory = _HANDLER_FACTORIES[rpc_type]
    behaviour = getattr(handler, attribute)
    kind = None if kinds is None else kinds.get(behaviour)
    if kind is None:
        kind = behaviour_kind(behaviour)
        if kinds is not None:
            kinds[behaviour] = kind
    for layer in reversed([around] if callable(around) else around):
        behaviour = wrap_behaviour(behaviour, info, layer, kind)
        # What a wrapper is: an async generator for a response stream, else a coroutine.
        kind = "async_generator" if kind in ("async_generator", "generator") else "coroutine"
    return factory(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


if TYPE_CHECKING:
    # The stubs make the interceptor generic; grpc's class is not subscriptable.
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class CallInterceptor(_ServerInterceptor, abc.ABC):
    """A server interceptor defined by what happens around each call.

    Subclasses implement `around(info, context)`, an async context manager entered
    before the servicer runs and exited with its outcome (exceptions included). The
    context manager may translate an exception (for example by aborting the call);
    it must let `asyncio.CancelledError` and grpc's abort exception pass through.
    """

    @abc.abstractmethod
    def around(
        self, info: MethodInfo, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AbstractAsyncContextManager[None]:
        """Return the async context manager that encloses one call."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the next handler in `around`, unless it is absent or infrastructure."""
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None or is_infrastructure_method(handler_call_details.method):
            # grpc answers UNIMPLEMENTED for a None handler; the stubs do not say
            # the continuation may return None, but it does for unknown methods.
            return handler  # type: ignore[return-value]
        return wrap_handler(handler, handler_call_details, self.around)


class InterceptorChain(_ServerInterceptor):
    """Several `CallInterceptor`s as one grpc interceptor, the first one outermost.

    grpc.aio awaits one interceptor per call instead of several, and each servicer
    function's kind is worked out the first time it is called; the `around`s nest
    exactly as the separate interceptors would (an exception leaves them innermost
    first, and each may translate it).
    """

    def __init__(self, interceptors: Sequence[CallInterceptor]) -> None:
        self._arounds = tuple(interceptor.around for interceptor in interceptors)
        # One entry per servicer function: bounded by the methods served.
        self._kinds: dict[_Behaviour, BehaviourKind] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the next handler in every `around`, unless it is absent or infrastructure."""
        handler: grpc.RpcMethodHandler[Any, Any] | None = await continuation(handler_call_details)
        if handler is None or is_infrastructure_method(handler_call_details.method):
            return handler  # type: ignore[return-value]
        return wrap_handler(handler, handler_call_details, self._arounds, self._kinds)
