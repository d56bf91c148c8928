"""FastAPI exception handlers: every error answered as RFC 9457 application/problem+json."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mainmast._error_types import (
    FieldViolation,
    MainmastError,
    ValidationError,
    concealed_internal_error,
)
from mainmast._problem import (
    PROBLEM_MEDIA_TYPE,
    http_status_problem_details,
    problem_details,
    problem_headers,
)
from mainmast._request_id import REQUEST_ID_HEADER
from mainmast.logging import bound_context, get_logger

INVALID_REQUEST_MESSAGE = "The request is not valid."
"""The message of the ValidationError a request that fails FastAPI's validation gets."""


def problem_response(error: MainmastError, headers: dict[str, str] | None = None) -> Response:
    """The problem+json answer for `error`: its status, document and headers."""
    return JSONResponse(
        problem_details(error),
        status_code=type(error).http_status,
        headers=problem_headers(error) | (headers or {}),
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _field_path(location: Sequence[object]) -> str:
    """A pydantic error location as a field path: `body.emails[1].domain`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def validation_error_from_request(exc: RequestValidationError) -> ValidationError:
    """The ValidationError for a request FastAPI could not validate, one violation per error.

    A violation has the field's path (its first part says where: body, query, path,
    header, cookie), pydantic's message and its error type as the reason; never the
    input, which may be a secret.
    """
    return ValidationError(
        INVALID_REQUEST_MESSAGE,
        field_violations=[
            FieldViolation(
                field=_field_path(error.get("loc", ())),
                description=str(error.get("msg", "")),
                reason=str(error.get("type", "")).upper(),
            )
            for error in exc.errors()
        ],
    )


class _ErrorAnswers:
    """The handlers `install_error_handlers` registers."""

    def __init__(self) -> None:
        self._logger = get_logger(__name__)

    async def mainmast_error(self, request: Request, exc: Exception) -> Response:
        """A MainmastError (any subclass): its own problem."""
        del request  # the answer depends on the error alone
        if not isinstance(exc, MainmastError):  # registered for MainmastError alone
            raise TypeError(f"expected a MainmastError, got {type(exc).__name__}")
        return problem_response(exc)

    async def request_validation_error(self, request: Request, exc: Exception) -> Response:
        """A request FastAPI could not validate: a ValidationError problem, 400."""
        del request  # the answer depends on the error alone
        if not isinstance(exc, RequestValidationError):  # registered for it alone
            raise TypeError(f"expected a RequestValidationError, got {type(exc).__name__}")
        return problem_response(validation_error_from_request(exc))

    async def http_exception(self, request: Request, exc: Exception) -> Response:
        """Starlette's and FastAPI's HTTPException (no such route, `raise HTTPException`)."""
        del request  # the answer depends on the exception alone
        if not isinstance(exc, HTTPException):  # registered for it alone
            raise TypeError(f"expected an HTTPException, got {type(exc).__name__}")
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code in {204, 304} or exc.status_code < 200:
            return Response(status_code=exc.status_code, headers=exc.headers)  # no body allowed
        return JSONResponse(
            http_status_problem_details(exc.status_code, detail),
            status_code=exc.status_code,
            headers=exc.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )

    async def unexpected_error(self, request: Request, exc: Exception) -> Response:
        """Whatever reached the outermost layer: logged, and answered without a word of it.

        Starlette runs this handler outside every middleware, so the request id is taken
        from the request's state (where RequestContextMiddleware left it) and sent back here.
        """
        request_id: str | None = getattr(request.state, "request_id", None)
        headers = {REQUEST_ID_HEADER: request_id} if request_id is not None else {}
        if isinstance(exc, MainmastError):
            # Raised by a middleware, outside the router's handlers: still an answer.
            return problem_response(exc, headers)
        context = bound_context(request_id=request_id) if request_id else nullcontext()
        with context:
            self._logger.error(
                "unhandled exception in HTTP request",
                exc_info=exc,
                http_method=request.method,
                http_path=request.url.path,
            )
        return problem_response(concealed_internal_error(), headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of `app` as RFC 9457 application/problem+json.

    - A MainmastError of any class: its HTTP status and problem document (`type`, `title`,
      `status`, `detail`, and `reason`, `domain`, `metadata`, `errors` for field
      violations), `Retry-After` in whole seconds, rounded up, when it has a retry delay.
      One handler on the base class: Starlette looks handlers up along the class's MRO.
    - A request that fails FastAPI's validation: a ValidationError, 400 like any other
      (not FastAPI's 422), so a client sees one shape and one status for invalid input
      whether HTTP parsing or the service found it.
    - An HTTPException (FastAPI's own 404 and 405, or one the application raises): its
      status and headers, as an `about:blank` problem with the same members.
    - Any other exception: 500 with a generic detail, logged with its traceback; neither
      its message nor its traceback reaches the client. (Starlette then re-raises it to
      the server, as it does for every unhandled exception.)
    """
    answers = _ErrorAnswers()
    app.add_exception_handler(MainmastError, answers.mainmast_error)
    app.add_exception_handler(RequestValidationError, answers.request_validation_error)
    app.add_exception_handler(HTTPException, answers.http_exception)
    app.add_exception_handler(Exception, answers.unexpected_error)
