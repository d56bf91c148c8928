"""Authentication of a service's callers by their mainmast access tokens.

A service other than auth (config, llm, an application's own gRPC service) verifies each
caller's bearer token locally against the auth service's JWKS, through an AuthClient:
no call to the auth service per request, and callers keep being authenticated while it
is down (the JWKS cache keeps its last good keys). The permission check that follows
asks the auth service's Check with the caller's own token, through the client's decision
cache, so a repeated decision costs no call either.
"""

from __future__ import annotations

from typing import Final

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import PermissionDeniedError
from mainmast.runtime import Authenticate, Metadata, Principal

from ._bearer import bearer_token
from ._client import AuthClient

PLATFORM_ADMIN_ROLE: Final = "roles/platform-admin"
"""The role that spans tenants (as the auth service names it in a token's roles)."""


def token_authenticator(client: AuthClient) -> Authenticate:
    """The runtime's authentication hook for callers with mainmast access tokens.

    It reads `authorization: Bearer <token>`, verifies the token locally with
    `client.verify` (UnauthenticatedError with the broken rule's reason otherwise) and
    returns the caller as a Principal carrying its tenant, subject, roles and token.
    """

    async def authenticate(method: str, metadata: Metadata) -> Principal:
        token = bearer_token(metadata)
        verified = await client.verify(token)
        return Principal(
            tenant=verified.tenant or "",
            subject=verified.subject,
            roles=verified.roles,
            credential=token,
        )

    return authenticate


async def require_permission(client: AuthClient, principal: Principal, permission: str) -> None:
    """PermissionDeniedError unless `principal` holds `permission` in its own tenant.

    The decision is the auth service's Check, asked with the principal's own token (a
    caller may always ask about itself) and reused from the client's decision cache.
    """
    if principal.credential is None:
        raise PermissionDeniedError(
            "The caller has no credential to check a permission with.",
            reason=AuthErrorReason.PERMISSION_MISSING.value,
            domain=AUTH_ERROR_DOMAIN,
        )
    allowed = await client.check(
        principal.tenant,
        permission,
        bearer_token=principal.credential,
        principal=principal.subject,
    )
    if not allowed:
        raise PermissionDeniedError(
            f"The caller lacks the permission {permission!r}.",
            reason=AuthErrorReason.PERMISSION_MISSING.value,
            domain=AUTH_ERROR_DOMAIN,
            metadata={"permission": permission},
        )
