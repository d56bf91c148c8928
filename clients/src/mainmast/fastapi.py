"""mainmast for FastAPI applications.

Errors: `install_error_handlers(app)` answers every error as RFC 9457
`application/problem+json`; a `mainmast.errors` class raised anywhere in a route or
dependency (or coming back from a service through `translate_rpc_errors`) gets its own
HTTP status, `Retry-After` and problem document, and nothing of an unexpected exception
reaches the client.

Request context: `RequestContextMiddleware` gives each request an id (the caller's
`X-Request-ID` when acceptable), binds it for logging and echoes it.

::

    from fastapi import FastAPI
    from mainmast.fastapi import RequestContextMiddleware, install_error_handlers

    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

The implementation lives in private modules, one per concern (`_http_errors`,
`_http_request_context`); this module only gathers the public names.
"""

from mainmast._http_errors import (
    INVALID_REQUEST_MESSAGE,
    install_error_handlers,
    problem_response,
    validation_error_from_request,
)
from mainmast._http_request_context import RequestContextMiddleware
from mainmast._problem import PROBLEM_MEDIA_TYPE, problem_details
from mainmast._request_id import REQUEST_ID_HEADER

__all__ = [
    "INVALID_REQUEST_MESSAGE",
    "PROBLEM_MEDIA_TYPE",
    "REQUEST_ID_HEADER",
    "RequestContextMiddleware",
    "install_error_handlers",
    "problem_details",
    "problem_response",
    "validation_error_from_request",
]
