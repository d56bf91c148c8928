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
    """Give every call a request id, bound as `request_id` and echoed to the caller.

    The id is the caller's `x-request-id` metadata when acceptable, otherwise a new
    one. It is bound in structlog's contextvars for the duration of the call, so
    every log line written while serving it carries it, and sent back at once in the
    initial metadata. Because the initial metadata goes out when the call starts,
    a servicer that wants to send metadata of its own sends it as trailing metadata.
    """

    @asynccontextmanager
    async def around(
        self, info: MethodInfo, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """Bind the request id and send it back before the servicer runs."""
        request_id = request_id_from(info.invocation_metadata)
        with bound_for_call(request_id=request_id):
            await context.send_initial_metadata(((REQUEST_ID_METADATA_KEY, request_id),))
            yield
