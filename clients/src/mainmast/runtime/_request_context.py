"""Request id and logging context for each call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc.aio

from mainmast._request_id import accepted_request_id

from ._call_scope import bound_for_call
from ._wrapping import CallInterceptor, Metadata, MethodInfo

REQUEST_ID_METADATA_KEY = "x-request-id"
"""The metadata key that carries a request id, in both directions."""


def request_id_from(metadata: Metadata) -> str:
    """Return the caller's `x-request-id` when it is acceptable, otherwise a new one."""
    for key, value in metadata:
        if key == REQUEST_ID_METADATA_KEY:
            return accepted_request_id(value if isinstance(value, str) else None)
    return accepted_request_id(None)


class RequestContextInterceptor(CallInterceptor):
    """Give every call a request id, bound as `request_id` and sent back to the caller.

    The id is the caller's `x-request-id` metadata when acceptable, otherwise a new
    one. It is bound in structlog's contextvars for the duration of the call, so
    every log line written while serving it carries it, and sent back in the trailing
    metadata, with the call's status. (Initial metadata of its own would have to go out
    in a send of its own before the servicer runs, which on a small server costs a
    unary call about a third more latency; trailing metadata leaves with the response.)

    A servicer that sets trailing metadata of its own keeps the request id beside it,
    and so does an error the runtime turns into a status; a servicer that aborts with
    trailing metadata of its own sends only that.
    """

    @asynccontextmanager
    async def around(
        self, info: MethodInfo, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """Bind the request id, and put it in the trailing metadata."""
        request_id = request_id_from(info.invocation_metadata)
        echoed = (REQUEST_ID_METADATA_KEY, request_id)
        with bound_for_call(request_id=request_id):
            context.set_trailing_metadata((echoed,))
            yield
            # A servicer's own trailing metadata replaced ours: send both.
            current = tuple(context.trailing_metadata())
            if echoed not in current:
                context.set_trailing_metadata((*current, echoed))
