"""token_authenticator and require_permission: how other services authenticate and authorise
callers with mainmast tokens, against a real auth service on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from mainmast.auth import (
    AuthClient,
    AuthErrorReason,
    require_permission,
    token_authenticator,
)
from mainmast.errors import PermissionDeniedError, UnauthenticatedError
from mainmast.runtime import Principal
from mainmast_auth.testing import seed_tenant

PASSWORD = "correct horse battery staple"
METHOD = "/mainmast.llm.v1.LlmService/Complete"


async def test_a_bearer_token_becomes_the_principal_with_its_roles_and_credential(
    sqlite_url: str, serve_auth: Any
) -> None:
    async with serve_auth(sqlite_url) as served:
        await seed_tenant(served.service.database, "tenants/acme", "alice", password=PASSWORD)
        async with AuthClient(config=served.client_config()) as auth:
            token = (await auth.login("tenants/acme", "alice", PASSWORD)).access_token
            authenticate = token_authenticator(auth)
            principal = await authenticate(METHOD, (("authorization", f"bearer {token}"),))

    assert principal == Principal(
        tenant="tenants/acme",
        subject="tenants/acme/users/alice",
        roles=("tenants/acme/roles/member",),
    )
    assert principal.credential == token
    assert token not in repr(principal)


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), AuthErrorReason.CREDENTIALS_MISSING),
        ((("authorization", "Basic YWxpY2U6cHc="),), AuthErrorReason.CREDENTIALS_MISSING),
        ((("authorization", "Bearer   "),), AuthErrorReason.CREDENTIALS_MISSING),
        ((("authorization", "Bearer not-a-jwt"),), AuthErrorReason.TOKEN_MALFORMED),
    ],
    ids=["no-header", "basic-scheme", "empty-token", "garbage"],
)
async def test_a_call_without_a_valid_bearer_token_is_unauthenticated(
    sqlite_url: str,
    serve_auth: Any,
    metadata: tuple[tuple[str, str], ...],
    reason: AuthErrorReason,
) -> None:
    async with (
        serve_auth(sqlite_url) as served,
        AuthClient(config=served.client_config()) as auth,
    ):
        with pytest.raises(UnauthenticatedError) as raised:
            await token_authenticator(auth)(METHOD, metadata)

    assert raised.value.reason == reason.value


async def test_require_permission_asks_the_auth_service_for_the_callers_own_grants(
    fresh_database_url: str, serve_auth: Any
) -> None:
    async with serve_auth(fresh_database_url) as served:
        # Seeded straight in the store, and picked up by the service's policy now rather than
        # at its next poll, so the checks below do not race the poll.
        await served.seed("tenants/acme", "mia")
        await served.seed("tenants/acme", "olga", role="owner")
        async with AuthClient(config=served.client_config()) as auth:
            authenticate = token_authenticator(auth)
            principals = []
            for name in ("mia", "olga"):
                token = (await auth.login("tenants/acme", name, PASSWORD)).access_token
                metadata = (("authorization", f"Bearer {token}"),)
                principals.append(await authenticate(METHOD, metadata))
            member, owner = principals
            await require_permission(auth, member, "invoices:read")  # a member is a viewer
            await require_permission(auth, owner, "llm:complete")  # an owner holds *:*
            with pytest.raises(PermissionDeniedError) as denied:
                await require_permission(auth, member, "llm:complete")
            with pytest.raises(PermissionDeniedError):
                await require_permission(auth, Principal("tenants/acme", member.subject), "x:read")

    assert denied.value.reason == AuthErrorReason.PERMISSION_MISSING.value
    assert denied.value.metadata == {"permission": "llm:complete"}
