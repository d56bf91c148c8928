"""mainmast.auth: the auth service's client, local verification of its tokens, its contract.

`AuthClient` (async) logs in, refreshes, revokes, introspects, checks permissions (with a
short-lived decision cache) and administers tenants, users, service accounts and roles;
`await client.verify(token)` verifies locally against a `JwksCache` that refreshes itself
on an unknown key id and keeps working while the service is down. Results are frozen
dataclasses (`TokenPair`, `Introspection`, `Tenant`, ...); failures are mainmast errors.

`TokenVerifier(KeySet.from_jwks(jwks), VerificationPolicy(issuer, audience)).verify(token)`
checks a token with no call to the auth service: signature with a key bound to one
algorithm, type `at+jwt`, issuer, audience, times with leeway, size; every failure an
`UnauthenticatedError` with a specific reason (`AuthErrorReason`) in `AUTH_ERROR_DOMAIN`.
`CallerAuthSettings` and `CallerAuthentication` give a service (config, llm, yours) its
callers' authentication from settings, connecting to the auth service in the background.
`token_authenticator(client)` is the runtime hook that authenticates a service's callers
by their tokens, verified locally; `require_permission(client, principal, "llm:complete")`
asks the auth service's Check for the caller, through the decision cache.
`ServiceAccountTokens(client, client_id=..., client_secret=...)` is the token provider of a
process that calls the fleet as its own service account (client credentials, renewed before
the token expires).
The generated v1 contract is in `mainmast.auth.v1`.
"""

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.auth._authenticator import (
    PLATFORM_ADMIN_ROLE,
    require_permission,
    token_authenticator,
)
from mainmast.auth._bearer import bearer_token
from mainmast.auth._caller_auth import (
    DEV_PRINCIPAL,
    CallerAuthentication,
    CallerAuthSettings,
)
from mainmast.auth._client import AuthClient, AuthClientConfig, CheckQuery
from mainmast.auth._jwks import KeySet, KeySetError, VerificationKey
from mainmast.auth._jwks_cache import AsyncRevocationCheck, FetchedJwks, JwksCache
from mainmast.auth._results import (
    CreatedServiceAccount,
    Introspection,
    KeyRotation,
    Page,
    ResourceState,
    RoleAssignment,
    RolePermission,
    ServiceAccount,
    SigningKeyInfo,
    Tenant,
    TokenPair,
    User,
)
from mainmast.auth._service_account_tokens import ServiceAccountTokens
from mainmast.auth._verify import TokenVerifier, VerificationPolicy, VerifiedToken

__all__ = [
    "AUTH_ERROR_DOMAIN",
    "DEV_PRINCIPAL",
    "PLATFORM_ADMIN_ROLE",
    "AsyncRevocationCheck",
    "AuthClient",
    "AuthClientConfig",
    "AuthErrorReason",
    "CallerAuthSettings",
    "CallerAuthentication",
    "CheckQuery",
    "CreatedServiceAccount",
    "FetchedJwks",
    "Introspection",
    "JwksCache",
    "KeyRotation",
    "KeySet",
    "KeySetError",
    "Page",
    "ResourceState",
    "RoleAssignment",
    "RolePermission",
    "ServiceAccount",
    "ServiceAccountTokens",
    "SigningKeyInfo",
    "Tenant",
    "TokenPair",
    "TokenVerifier",
    "User",
    "VerificationKey",
    "VerificationPolicy",
    "VerifiedToken",
    "bearer_token",
    "require_permission",
    "token_authenticator",
]
