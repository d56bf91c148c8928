"""mainmast.fastapi: problem+json for every error, and the request context middleware.

The fleet's dependencies (CurrentUser, require_permission, Secret) are tested in
test_fastapi_dependencies.py, and against real services in tests/test_fastapi_fleet.py.

Requests go through httpx's ASGI transport into a real FastAPI application; the end-to-end
test also calls a real grpc.aio server on loopback behind the runtime's ErrorInterceptor.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

import grpc
import grpc.aio
import httpx
import pytest
import structlog
from fastapi import FastAPI, HTTPException, Query, Request
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from structlog.testing import capture_logs

from mainmast import fastapi as mainmast_fastapi
from mainmast.auth import AuthErrorReason
from mainmast.errors import (
    ERROR_CLASSES,
    AlreadyExistsError,
    FieldViolation,
    MainmastError,
    NotFoundError,
    QuotaViolation,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
    translate_rpc_errors,
)
from mainmast.fastapi import RequestContextMiddleware, install_error_handlers
from mainmast.runtime import ErrorInterceptor

PROBLEM_JSON = "application/problem+json"
SERVICE = "mainmast.test.v1.UserService"


class Signup(BaseModel):
    email: str
    age: int
    password: str


def _app(raised: list[BaseException]) -> FastAPI:
    """An application whose `/raise` raises the last exception the test put in `raised`."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/raise")
    async def raise_it() -> None:
        raise raised[-1]

    @app.get("/raise-sync")
    def raise_it_in_a_thread() -> None:
        raise raised[-1]

    @app.post("/signup")
    async def signup(body: Signup, limit: Annotated[int, Query()] = 10) -> dict[str, Any]:
        return {"email": body.email, "limit": limit}

    @app.get("/context")
    async def context(request: Request) -> dict[str, Any]:
        return {
            "bound": structlog.contextvars.get_contextvars(),
            "state": request.state.request_id,
        }

    @app.get("/context-sync")
    def context_in_a_thread() -> dict[str, Any]:
        return {"bound": structlog.contextvars.get_contextvars()}

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    # Starlette re-raises unhandled exceptions to the server after answering; a server
    # logs them, the transport would raise them into the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _answer_to(error: BaseException, path: str = "/raise") -> httpx.Response:
    async with _client(_app([error])) as client:
        return await client.get(path)


def _example_of(error_class: type[MainmastError]) -> MainmastError:
    common: dict[str, Any] = {"reason": "SPECIFIC_CAUSE", "metadata": {"tenant": "acme"}}
    if error_class is ValidationError:
        return ValidationError(
            "Invalid.",
            field_violations=[FieldViolation("email", "not an address", "INVALID_FORMAT")],
            **common,
        )
    if error_class is RateLimitedError:
        return RateLimitedError(
            "Slow down.",
            retry_after=timedelta(seconds=1, milliseconds=200),
            quota_violations=[QuotaViolation("tenant:acme", "60 requests per minute")],
            **common,
        )
    return error_class(f"A {error_class.__name__}.", **common)


@pytest.mark.parametrize("path", ["/raise", "/raise-sync"])
@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=lambda cls: cls.__name__)
async def test_every_class_is_answered_with_its_status_and_problem(
    error_class: type[MainmastError], path: str
) -> None:
    error = _example_of(error_class)

    response = await _answer_to(error, path)

    assert response.status_code == error_class.http_status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == error_class.problem_type
    assert body["title"] == error_class.title
    assert body["status"] == error_class.http_status
    assert body["detail"] == error.message
    assert (body["reason"], body["domain"], body["metadata"]) == (
        "SPECIFIC_CAUSE",
        "mainmast.dev",
        {"tenant": "acme"},
    )
    assert ("errors" in body) is (error_class is ValidationError)
    assert ("quota_violations" in body) is (error_class is RateLimitedError)
    assert ("retry-after" in response.headers) is (error_class is RateLimitedError)


async def test_the_seed_form_answers_404_with_type_and_id() -> None:
    response = await _answer_to(NotFoundError("User", "42"))

    assert response.status_code == 404
    assert response.json() == {
        "type": "https://mainmast.dev/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "User '42' was not found.",
        "reason": "NOT_FOUND",
        "domain": "mainmast.dev",
        "metadata": {"resource_type": "User", "resource_id": "42"},
    }


async def test_an_unknown_route_and_a_wrong_method_are_problems_too() -> None:
    async with _client(_app([])) as client:
        missing = await client.get("/no/such/route")
        wrong_method = await client.delete("/raise")

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() | {"detail": None} == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": None,
        "reason": "NOT_FOUND",
        "domain": "mainmast.dev",
        "metadata": {},
    }
    assert (wrong_method.status_code, wrong_method.json()["reason"]) == (405, "METHOD_NOT_ALLOWED")
    assert wrong_method.headers["allow"] == "GET"


async def test_an_http_exception_keeps_its_status_detail_and_headers() -> None:
    error = HTTPException(status_code=418, detail="Short and stout.", headers={"X-Pot": "tea"})

    response = await _answer_to(error)

    assert response.status_code == 418
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-pot"] == "tea"
    assert response.json()["title"] == "I'm a Teapot"
    assert response.json()["detail"] == "Short and stout."


async def test_already_exists_and_conflict_share_409_but_not_their_type() -> None:
    conflict = await _answer_to(AlreadyExistsError("User", "42"))

    assert conflict.status_code == 409
    assert conflict.json()["type"] == "https://mainmast.dev/problems/already-exists"
    assert conflict.json()["reason"] == "ALREADY_EXISTS"


async def test_field_violations_are_listed_as_errors() -> None:
    response = await _answer_to(
        ValidationError(
            "Invalid.",
            field_violations=[
                FieldViolation("email", "not an address", "INVALID_FORMAT"),
                FieldViolation("name", "required"),
            ],
        )
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "email", "description": "not an address", "reason": "INVALID_FORMAT"},
        {"field": "name", "description": "required"},
    ]


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (timedelta(seconds=2), "2"),
        (0.2, "1"),
        (timedelta(seconds=59, microseconds=1), "60"),
        (0, "0"),
    ],
)
async def test_retry_after_is_whole_seconds_rounded_up(
    retry_after: float | timedelta, header: str
) -> None:
    limited = await _answer_to(RateLimitedError("Slow down.", retry_after=retry_after))
    unavailable = await _answer_to(UnavailableError("Later.", retry_after=retry_after))

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == header
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == header


async def test_unavailable_without_a_retry_delay_sends_no_retry_after() -> None:
    response = await _answer_to(UnavailableError("Later."))

    assert response.status_code == 503
    assert "retry-after" not in response.headers


async def test_a_401_carries_a_bearer_challenge() -> None:
    response = await _answer_to(UnauthenticatedError("A token is required."))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "reason",
    [reason for reason in AuthErrorReason if reason.startswith("TOKEN_")],
    ids=str,
)
async def test_a_refused_token_is_challenged_as_an_invalid_token(reason: AuthErrorReason) -> None:
    response = await _answer_to(UnauthenticatedError("No.", reason=reason.value))

    # RFC 6750 section 3.1: the client may get a new token instead of asking its user again.
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "reason",
    [AuthErrorReason.CREDENTIALS_MISSING, AuthErrorReason.INVALID_CREDENTIALS, "UNAUTHENTICATED"],
    ids=str,
)
async def test_no_token_or_a_failed_login_gets_the_bare_challenge(reason: str) -> None:
    response = await _answer_to(UnauthenticatedError("No.", reason=reason))

    assert response.headers["www-authenticate"] == "Bearer"


@settings(max_examples=50, deadline=None)
@given(
    error_class=st.sampled_from(ERROR_CLASSES),
    message=st.text(max_size=200),
    metadata=st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=40),
    domain=st.text(min_size=1, max_size=40),
)
async def test_any_message_and_metadata_arrive_intact_in_the_problem(
    error_class: type[MainmastError], message: str, metadata: dict[str, str], domain: str
) -> None:
    error = error_class(message, metadata=metadata, domain=domain)

    response = await _answer_to(error)

    assert response.status_code == error_class.http_status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = json.loads(response.content.decode("utf-8"))
    assert body == {
        "type": error_class.problem_type,
        "title": error_class.title,
        "status": error_class.http_status,
        "detail": message,
        "reason": error_class.default_reason,
        "domain": domain,
        "metadata": metadata,
    }


async def test_a_request_fastapi_cannot_validate_is_a_validation_problem_without_the_input() -> (
    None
):
    async with _client(_app([])) as client:
        response = await client.post(
            "/signup?limit=many",
            json={"email": "a@example.com", "age": "hunter2-is-my-age"},
        )

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == ValidationError.problem_type
    assert body["reason"] == "INVALID_ARGUMENT"
    assert body["detail"] == mainmast_fastapi.INVALID_REQUEST_MESSAGE
    assert {(error["field"], error["reason"]) for error in body["errors"]} == {
        ("query.limit", "INT_PARSING"),
        ("body.age", "INT_PARSING"),
        ("body.password", "MISSING"),
    }
    assert all(error["description"] for error in body["errors"])
    assert "hunter2" not in response.text
    assert "many" not in response.text


async def test_an_index_in_a_field_path_is_written_in_brackets() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/batch")
    async def batch(items: list[Signup]) -> int:
        return len(items)

    async with _client(app) as client:
        response = await client.post(
            "/batch", json=[{"email": "a@example.com", "age": 1, "password": "x"}, {}]
        )

    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"body[1].email", "body[1].age", "body[1].password"}


async def test_an_unexpected_exception_is_a_generic_500_logged_with_its_traceback() -> None:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with _client(_app([KeyError("the password is hunter2")])) as client:
            response = await client.get("/raise", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "https://mainmast.dev/problems/internal",
        "title": "Internal error",
        "status": 500,
        "detail": "Internal error.",
        "reason": "INTERNAL",
        "domain": "mainmast.dev",
        "metadata": {},
    }
    assert "hunter2" not in response.text
    assert "KeyError" not in response.text
    assert "Traceback" not in response.text
    # Starlette answers this outside every middleware: the id is still sent back and logged.
    assert response.headers["x-request-id"] == "req-500"
    (logged,) = [entry for entry in logs if entry.get("exc_info")]
    assert isinstance(logged["exc_info"], KeyError)
    assert logged["log_level"] == "error"
    assert logged["request_id"] == "req-500"
    assert (logged["http_method"], logged["http_path"]) == ("GET", "/raise")


async def test_a_mainmast_error_raised_by_a_middleware_is_still_its_own_problem() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.middleware("http")
    async def refuse_everyone(request: Request, call_next: Any) -> Any:
        del request, call_next
        raise UnauthenticatedError("No entry.")

    async with _client(app) as client:
        response = await client.get("/anything")

    assert response.status_code == 401
    assert response.json()["detail"] == "No entry."


async def test_the_middleware_echoes_an_acceptable_request_id_and_binds_it() -> None:
    async with _client(_app([])) as client:
        response = await client.get("/context", headers={"X-Request-ID": "req-123"})

    assert response.headers["x-request-id"] == "req-123"
    assert response.json()["bound"]["request_id"] == "req-123"
    assert response.json()["state"] == "req-123"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Request-ID": "x" * 200}, {"X-Request-ID": "has spaces"}, {"X-Request-ID": ""}],
    ids=["absent", "too long", "spaces", "empty"],
)
async def test_the_middleware_makes_an_id_when_none_acceptable_is_sent(
    headers: dict[str, str],
) -> None:
    async with _client(_app([])) as client:
        response = await client.get("/context", headers=headers)

    made = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert response.json()["bound"]["request_id"] == made


async def test_each_request_gets_its_own_id_and_nothing_stays_bound_after() -> None:
    async with _client(_app([])) as client:
        first = await client.get("/context-sync")
        second = await client.get("/context-sync")

    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert first.json()["bound"]["request_id"] == first.headers["x-request-id"]
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_the_request_id_comes_back_with_error_answers_too() -> None:
    async with _client(_app([NotFoundError("User", "42")])) as client:
        response = await client.get("/raise", headers={"X-Request-ID": "req-404"})

    assert response.status_code == 404
    assert response.headers["x-request-id"] == "req-404"


async def test_the_middleware_passes_the_lifespan_protocol_through() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        del app
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(RequestContextMiddleware)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)

    assert events == ["startup", "shutdown"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.fixture
async def user_service() -> AsyncIterator[int]:
    """A real gRPC server whose GetUser raises NotFoundError or RateLimitedError."""

    async def get_user(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        del context
        if request == b"busy":
            raise RateLimitedError("Too many lookups.", retry_after=2.5, reason="LOOKUP_QUOTA")
        raise NotFoundError("User", request.decode(), domain="users.mainmast.dev")

    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"GetUser": grpc.unary_unary_rpc_method_handler(get_user)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


async def test_an_error_from_a_grpc_service_reaches_the_http_caller_as_its_problem(
    user_service: int,
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/users/{user_id}")
    async def get_user(user_id: str) -> str:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{user_service}") as channel,
            translate_rpc_errors(),
        ):
            reply: bytes = await channel.unary_unary(f"/{SERVICE}/GetUser")(
                user_id.encode(), timeout=10
            )
        return reply.decode()

    async with _client(app) as client:
        missing = await client.get("/users/42")
        busy = await client.get("/users/busy")

    assert missing.status_code == 404
    assert missing.json()["metadata"] == {"resource_type": "User", "resource_id": "42"}
    assert missing.json()["domain"] == "users.mainmast.dev"
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "3"
    assert busy.json()["reason"] == "LOOKUP_QUOTA"


def test_the_public_names_are_pinned() -> None:
    assert set(mainmast_fastapi.__all__) == {
        "INVALID_REQUEST_MESSAGE",
        "PROBLEM_MEDIA_TYPE",
        "REQUEST_ID_HEADER",
        "CallerToken",
        "CurrentUser",
        "Fleet",
        "FleetClients",
        "RequestContextMiddleware",
        "Secret",
        "caller_token",
        "current_user",
        "fleet_clients",
        "install_error_handlers",
        "problem_details",
        "problem_response",
        "require_permission",
        "validation_error_from_request",
    }
    assert mainmast_fastapi.__all__ == sorted(
        mainmast_fastapi.__all__, key=lambda name: (not name.isupper(), name[0].islower(), name)
    )
