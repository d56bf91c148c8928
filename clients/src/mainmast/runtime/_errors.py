"""Error mapping: what a servicer raises becomes the status the caller receives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio

from mainmast.errors import MainmastError, status_from_error
from mainmast.logging import get_logger

from ._wrapping import CallInterceptor, MethodInfo


class ErrorInterceptor(CallInterceptor):
    """Turn exceptions raised by servicers into gRPC statuses, for all four RPC shapes.

    A `MainmastError` becomes its rich status (google.rpc.Status with ErrorInfo and
    friends). Any other exception is logged with its traceback and becomes a generic
    INTERNAL status that carries neither its message nor its traceback. An abort the
    servicer made itself, and cancellation, pass through untouched; so does a status
    code the servicer set before raising, as the generated servicer base classes do
    for UNIMPLEMENTED methods.
    """

    def __init__(self) -> None:
        self._logger = get_logger(__name__)

    @asynccontextmanager
    async def around(
        self, info: MethodInfo, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """Abort the call with the status matching whatever the servicer raised."""
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            if not isinstance(exc, MainmastError):
                chosen: grpc.StatusCode | None = context.code()  # None until set, stubs aside
                if chosen is not None and chosen is not grpc.StatusCode.OK:
                    # The servicer chose its status before raising, as the generated
                    # servicer base classes do for UNIMPLEMENTED: grpc would keep it too.
                    await context.abort(chosen, context.details() or "")
                self._logger.exception(
                    "unhandled exception in gRPC method", grpc_method=info.method
                )
            status = status_from_error(exc)
            # What abort_with_status does, spelled out: the tracing interceptor's
            # context records the code of an abort() on the span, not of an
            # abort_with_status(). The trailing metadata set so far (the request id)
            # goes with the status's own, which abort() would otherwise replace.
            await context.abort(
                status.code,
                status.details,
                (*context.trailing_metadata(), *status.trailing_metadata),
            )
