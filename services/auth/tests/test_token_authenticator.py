"""token_authenticator and require_permission: how other services authenticate and authorise
callers with mainmast tokens, against a real auth service on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from mainmast.auth import (
    AuthClient,
    AuthClientConfig,
    AuthErrorReason,
    require_permission,
    token_authenticator,
)
from mainmast.errors import PermissionDeniedError, UnauthenticatedError
from mainmast.runtime import Principal, ServiceServer
from mainmast_auth.service import AuthService
from mainmast_auth.settings import AuthSettings
from mainmast_auth.testing import seed_tenant

PASSWORD = "correct horse battery staple"
METHOD = "/mainmast.llm.v1.LlmService/Complete"


def _service(database: str, tmp_path: Path) -> AuthService:
    return AuthService(
        AuthSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            database_url=SecretStr(database),
            signing_key_encryption_key_file=tmp_path / "sealing.key",
        )
    )


async def test_a_bearer_token_becomes_the_principal_with_its_roles_and_credential(
    sqlite_url: str, tmp_path: Path
) -> None:
    service = _service(sqlite_url, tmp_path)
    async with ServiceServer(service) as server:
        await seed_tenant(service.database, "tenants/acme", "alice", password=PASSWORD)
        async with AuthClient(config=AuthClientConfig(target=f"127.0.0.1:{server.port}")) as auth:
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
    tmp_path: Path,
    metadata: tuple[tuple[str, str], ...],
    reason: AuthErrorReason,
) -> None:
    service = _service(sqlite_url, tmp_path)
    async with (
        ServiceServer(service) as server,
        AuthClient(config=AuthClientConfig(target=f"127.0.0.1:{server.port}")) as auth,
    ):
        with pytest.raises(UnauthenticatedError) as raised:
            await token_authenticator(auth)(METHOD, metadata)

    assert raised.value.reason == reason.value


async def test_require_permission_asks_the_auth_service_for_the_callers_own_grants(
    fresh_database_url: str, tmp_path: Path
) -> None:
    service = _service(fresh_database_url, tmp_path)
    async with ServiceServer(service) as server:
        await seed_tenant(service.database, "tenants/acme", "mia", password=PASSWORD)
        await seed_tenant(service.database, "tenants/acme", "olga", password=PASSWORD, role="owner")
        # Seeded straight in the store: the service's policy picks it up now, not at its
        # next poll, so the checks below do not race the poll.
        await service.policy.refresh()
        async with AuthClient(config=AuthClientConfig(target=f"127.0.0.1:{server.port}")) as auth:
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
