"""The request context of an HTTP request: its id, bound for logging and echoed back."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mainmast._request_id import REQUEST_ID_HEADER, accepted_request_id
from mainmast.logging import bound_context


class RequestContextMiddleware:
    """Give every request an id, bound as `request_id` in the logging context and echoed.

    The id is the caller's `X-Request-ID` header when it is acceptable (1 to 128 letters,
    digits and `._:-`, as the gRPC runtime accepts), otherwise a new one. While the
    request is served it is bound in structlog's contextvars, so every log line carries
    it; it is kept as `request.state.request_id` and sent back in the `X-Request-ID`
    response header. A pure ASGI middleware: it adds nothing per request beyond that
    (Starlette's BaseHTTPMiddleware would run the app in another task).

    ::

        app.add_middleware(RequestContextMiddleware)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection with its request id bound."""
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        # Servers give each request its own state dict (a copy of the lifespan state).
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with bound_context(request_id=request_id):
            await self.app(scope, receive, send_with_request_id)
