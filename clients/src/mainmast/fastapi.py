"""mainmast for FastAPI applications.

The fleet: `Fleet(auth=..., config=..., client_id=..., client_secret=...)` declares the
services an application uses and its own service account; `FastAPI(lifespan=fleet.lifespan)`
connects their clients when the application starts (grpc.aio channels belong to the event
loop that made them, so never at import time) and closes them when it stops. In a lifespan
of the application's own, `async with fleet.connect(app) as clients:` does the same and
gives the clients (`FleetClients`), which routes reach through `Depends(fleet_clients)`.

Callers: `CurrentUser` is the caller, its `Authorization: Bearer` token verified locally
against the auth service's keys (401 with a bearer challenge without a valid one);
`require_permission("users:read")` lets through only callers the auth service allows, in
their own tenant or another named one (403 otherwise); `CallerToken` is the caller's token,
to call a service on its behalf.

Secrets: `Secret("database-password")` gives a secret's value, read from the config service
as the application's service account (never with the caller's token), cached by the client,
and masked in every log line.

Errors: `install_error_handlers(app)` answers every error as RFC 9457
`application/problem+json`; a `mainmast.errors` class raised anywhere in a route or
dependency (or coming back from a service through `translate_rpc_errors`) gets its own
HTTP status, `Retry-After` and problem document, and nothing of an unexpected exception
reaches the client.

Request context: `RequestContextMiddleware` gives each request an id (the caller's
`X-Request-ID` when acceptable), binds it for logging and echoes it.

::

    from typing import Annotated

    from fastapi import FastAPI
    from mainmast.auth import AuthClientConfig, VerifiedToken
    from mainmast.config import ConfigClientConfig
    from mainmast.fastapi import (
        CurrentUser, Fleet, RequestContextMiddleware, Secret, install_error_handlers,
        require_permission)

    fleet = Fleet(
        auth=AuthClientConfig(target="auth:50051"),
        config=ConfigClientConfig(target="config:50052"),
        client_id=settings.client_id,          # the application's service account
        client_secret=settings.client_secret,  # a pydantic SecretStr
    )
    app = FastAPI(lifespan=fleet.lifespan)
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str | None]:
        return {"subject": user.subject, "tenant": user.tenant}

    @app.get("/users", dependencies=[require_permission("users:read")])
    async def list_users(
        database_password: Annotated[str, Secret("database-password")],
    ) -> list[str]: ...

    @app.delete("/tenants/{tenant_id}/users/{user_id}")
    async def remove_user(
        tenant_id: str,
        user_id: str,
        admin: Annotated[
            VerifiedToken, require_permission("users:delete", tenant_from="tenant_id")
        ],
    ) -> None: ...

The implementation lives in private modules, one per concern (`_http_fleet`, `_http_auth`,
`_http_secrets`, `_http_errors`, `_http_request_context`); this module only gathers the
public names.
"""

from mainmast._http_auth import (
    CallerToken,
    CurrentUser,
    caller_token,
    current_user,
    require_permission,
)
from mainmast._http_errors import (
    INVALID_REQUEST_MESSAGE,
    install_error_handlers,
    problem_response,
    validation_error_from_request,
)
from mainmast._http_fleet import Fleet, FleetClients, fleet_clients
from mainmast._http_request_context import RequestContextMiddleware
from mainmast._http_secrets import Secret
from mainmast._problem import PROBLEM_MEDIA_TYPE, problem_details
from mainmast._request_id import REQUEST_ID_HEADER

__all__ = [
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
]
