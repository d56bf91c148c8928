"""FastAPI dependencies for a request's caller: its token, who it is, what it may do.

The caller sends a mainmast access token as `Authorization: Bearer <token>` (declared as
an HTTP bearer security scheme, so OpenAPI and the docs page show it). The token is
verified locally against the auth service's keys, with no call per request, and keeps
being verified while the auth service is down; a permission is the auth service's Check,
asked with the caller's own token and reused from the client's decision cache for a few
seconds. A caller without a valid token gets 401 with a bearer challenge, one without the
permission 403, both as problem+json once `install_error_handlers(app)` is in place.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from mainmast._http_fleet import FleetClients, unreachable
from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason, VerifiedToken
from mainmast.auth import require_permission as require_principal_permission
from mainmast.errors import (
    DeadlineExceededError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from mainmast.logging import bound_context
from mainmast.runtime import Principal

_BEARER_SCHEME: Final = HTTPBearer(
    auto_error=False,  # a missing token is our UnauthenticatedError, answered as a problem
    scheme_name="mainmast",
    description="A mainmast access token, issued by the auth service.",
)

# The shape alone; the auth service checks the rest of a permission's syntax.
_PERMISSION_SHAPE: Final = re.compile(r"[^:\s]+:[^:\s]+")


async def caller_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER_SCHEME)],
) -> str:
    """The dependency that gives the caller's bearer token, as sent (not yet verified).

    UnauthenticatedError CREDENTIALS_MISSING when there is none, or another scheme.
    """
    if credentials is None:
        raise UnauthenticatedError(
            "Send an access token as `Authorization: Bearer <token>`.",
            reason=AuthErrorReason.CREDENTIALS_MISSING.value,
            domain=AUTH_ERROR_DOMAIN,
        )
    return credentials.credentials


CallerToken = Annotated[str, Depends(caller_token)]
"""The caller's bearer token, to call a fleet service on the caller's behalf (for example
`auth.get_user(name, bearer_token=token)`); depend on `CurrentUser` too to have it verified."""


async def current_user(request: Request, token: CallerToken) -> AsyncIterator[VerifiedToken]:
    """The dependency that gives the verified caller; see `CurrentUser`."""
    try:
        verified = await FleetClients.of(request.app).auth.verify(token)
    except (UnavailableError, DeadlineExceededError) as exc:
        # Only before the first keys arrived, or when revocations are asked of the service.
        raise unreachable("auth", exc) from exc
    # Every log line of the request names the caller, as the gRPC services' lines do.
    with bound_context(tenant=verified.tenant or "", subject=verified.subject):
        yield verified


CurrentUser = Annotated[VerifiedToken, Depends(current_user)]
"""The verified caller: `subject`, `tenant`, `roles`, `scopes`, `client_id`, ... of its token.

A request without a token gets 401 CREDENTIALS_MISSING; one whose token does not verify,
401 with the broken rule as its reason (TOKEN_EXPIRED, TOKEN_SIGNATURE_INVALID, ...) and
`WWW-Authenticate: Bearer error="invalid_token"`. While the request is served, its tenant
and subject are on every log line.

::

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"subject": user.subject}
"""


def require_permission(
    permission: str, *, tenant: str | None = None, tenant_from: str | None = None
) -> Any:  # Any, as FastAPI's own Depends returns, so that it fits wherever Depends does
    """A dependency that lets the request through only when the caller holds `permission`.

    The permission is checked in the caller's own tenant, or in `tenant` (a resource name,
    `tenants/acme`), or in the tenant whose id the path parameter `tenant_from` holds
    (`tenant_from="tenant_id"` on `/tenants/{tenant_id}/users` checks in `tenants/<id>`).
    The auth service decides, and keeps tenants apart: asking about another tenant than
    the caller's is refused unless the caller is a platform admin. Without the permission:
    403 PERMISSION_MISSING; with the auth service unreachable and no decision cached: 503.
    The dependency gives the verified caller, so it serves as a guard or as a parameter::

        @app.get("/users", dependencies=[require_permission("users:read")])
        async def list_users() -> list[str]: ...

        @app.delete("/tenants/{tenant_id}/users/{user_id}")
        async def remove(
            tenant_id: str,
            user_id: str,
            admin: Annotated[
                VerifiedToken, require_permission("users:delete", tenant_from="tenant_id")
            ],
        ) -> None: ...

    ValueError, when the route is declared, for a permission that is not
    "resource:action" or for both `tenant` and `tenant_from`.
    """
    if not _PERMISSION_SHAPE.fullmatch(permission):
        raise ValueError(
            f'a permission is "resource:action", such as "users:read", not {permission!r}'
        )
    if tenant is not None and tenant_from is not None:
        raise ValueError("name the tenant by tenant or by tenant_from, not both")

    async def permitted_user(
        request: Request, user: CurrentUser, token: CallerToken
    ) -> VerifiedToken:
        where = tenant or _tenant_in_path(request, tenant_from) or user.tenant
        if not where:
            raise PermissionDeniedError(
                "The caller's token names no tenant to check a permission in.",
                reason=AuthErrorReason.PERMISSION_MISSING.value,
                domain=AUTH_ERROR_DOMAIN,
            )
        caller = Principal(tenant=where, subject=user.subject, roles=user.roles, credential=token)
        try:
            await require_principal_permission(
                FleetClients.of(request.app).auth, caller, permission
            )
        except (UnavailableError, DeadlineExceededError) as exc:
            raise unreachable("auth", exc) from exc
        return user

    return Depends(permitted_user)


def _tenant_in_path(request: Request, parameter: str | None) -> str | None:
    """The tenant named by the path parameter `parameter`, or None when there is none."""
    if parameter is None:
        return None
    tenant_id = request.path_params.get(parameter)
    if tenant_id is None:
        raise RuntimeError(
            f"require_permission(tenant_from={parameter!r}) is used on a route whose path "
            f"has no {{{parameter}}} parameter"
        )
    return f"tenants/{tenant_id}"
