"""`Secret(name)`: a FastAPI dependency that gives a secret's value from the config service.

The application reads its secrets as itself, with its service account's token (see
`Fleet`), never with the caller's: what the application may read is its own business, and
the config client's cache serves every caller alike. Values come from that cache, which
keeps each no longer than the config service would, and every value is registered with
the log redaction, so no log line of the application prints it.

A caller is not told why the application could not read its own secret: a secret that does
not exist or that the access policy does not grant, or credentials the config service
refuses, are the application's fault, answered 500 and logged with the reason; a config
service (or auth service) that does not answer is 503, so the caller may try again.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from starlette.requests import Request

from mainmast._error_types import concealed_internal_error
from mainmast._http_fleet import FleetClients, unreachable
from mainmast.errors import (
    DeadlineExceededError,
    MainmastError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from mainmast.logging import get_logger


def Secret(name: str, *, version: str | None = None) -> Any:  # noqa: N802 -- named as FastAPI's Depends and Query, beside which it stands
    """A dependency that gives the value of the secret `name` (its latest version, or
    `version`), read from the config service as the application's service account.

    ::

        @app.post("/charges")
        async def charge(api_key: Annotated[str, Secret("payments/stripe-key")]) -> None: ...

    Returns Any, as FastAPI's own Depends does, so that it fits wherever Depends does.
    """
    if not name:
        raise ValueError("a secret has a name")

    async def secret_value(request: Request) -> str:
        return await read_secret(FleetClients.of(request.app), name, version)

    return Depends(secret_value)


async def read_secret(clients: FleetClients, name: str, version: str | None = None) -> str:
    """The value of the secret `name` read with `clients`, or the error a caller of the
    application should see (see the module docstring)."""
    try:
        try:
            return (await clients.config.get_secret(name, version)).value
        except UnauthenticatedError:
            if clients.service_account is None:
                raise
            # The token held was refused although it had life left (revoked, or signed by a
            # key the config service no longer trusts): once more, with a new one.
            clients.service_account.forget()
            return (await clients.config.get_secret(name, version)).value
    except (UnavailableError, DeadlineExceededError) as exc:
        raise unreachable("config", exc) from exc
    except MainmastError as exc:
        get_logger(__name__).error(
            "fleet.secret_unreadable",
            secret_name=name,
            error=type(exc).__name__,
            reason=exc.reason,
            detail=exc.message,
            hint=_hint(exc, clients),
        )
        raise concealed_internal_error() from exc


def _hint(error: MainmastError, clients: FleetClients) -> str | None:
    """What to look at, for the operator who reads the log line; None: the reason says it."""
    if isinstance(error, UnauthenticatedError):
        if clients.service_account is None:
            return "the config service wants a token: give the Fleet a client_id and client_secret"
        return "the config service or the auth service refused the service account's token"
    if isinstance(error, PermissionDeniedError):
        return "the config service's access policy does not grant this secret to the application"
    return None
