"""Fixtures of the auth service's tests: the settings of a service of the test's own, and auth
services served on 127.0.0.1 with a stub on each, with a platform admin or without.

The tests run with `--import-mode=importlib`, so a test module cannot import this file: it
asks for the fixtures and names `Served` as `Any`, as the config service's tests do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc.aio
import pytest
from google.protobuf.message import Message

from mainmast.auth import AuthClientConfig, KeySet, TokenVerifier, VerificationPolicy
from mainmast.auth.v1 import auth_service_pb2 as pb
from mainmast.auth.v1 import auth_service_pb2_grpc
from mainmast.db import DatabasePool
from mainmast.errors import translate_rpc_errors
from mainmast.runtime import ServiceServer
from mainmast_auth._admin_service import bootstrap_platform_admin
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._policy_model import PolicyLine
from mainmast_auth._store_migrations import migrate_database
from mainmast_auth._store_policies import seed_policy
from mainmast_auth.service import AuthService
from mainmast_auth.settings import AuthSettings
from mainmast_auth.testing import grant_platform_admin, seed_tenant

PASSWORD: Final = "correct horse battery staple"
"""The password of the users the tests make, unless a test names another."""

ROOT_PASSWORD: Final = "the platform's own long passphrase"

R = TypeVar("R")


@dataclass
class Served:
    """A running auth service, its address, a stub on it, and the token calls carry unless
    told otherwise (the platform admin's, once `add_root` made one)."""

    service: AuthService
    target: str
    stub: auth_service_pb2_grpc.AuthServiceAsyncStub
    root_token: str = ""

    async def login(
        self, tenant: str, username: str, password: str = PASSWORD
    ) -> pb.IssueTokenResponse:
        """A password grant."""
        request = pb.IssueTokenRequest(
            password=pb.IssueTokenRequest.PasswordGrant(
                tenant=tenant, username=username, password=password
            )
        )
        with translate_rpc_errors():
            return await self.stub.IssueToken(request)

    async def access_token(self, tenant: str, username: str, password: str = PASSWORD) -> str:
        """The access token of a password grant."""
        return (await self.login(tenant, username, password)).access_token

    async def refresh(self, refresh_token: str) -> pb.IssueTokenResponse:
        """A refresh grant."""
        request = pb.IssueTokenRequest(
            refresh_token=pb.IssueTokenRequest.RefreshTokenGrant(refresh_token=refresh_token)
        )
        with translate_rpc_errors():
            return await self.stub.IssueToken(request)

    async def call(
        self, method: Callable[..., Awaitable[R]], request: Message, token: str | None = None
    ) -> R:
        """`method(request)` as the holder of `token` (the platform admin's by default)."""
        metadata = (("authorization", f"Bearer {token or self.root_token}"),)
        with translate_rpc_errors():
            return await method(request, metadata=metadata)

    async def introspect(self, token: str, *, as_token: str) -> bool:
        """Whether IntrospectToken says `token` is active (asked with `as_token`)."""
        request = pb.IntrospectTokenRequest(token=token)
        return (await self.call(self.stub.IntrospectToken, request, as_token)).active

    async def revoke(self, as_token: str, **target: str) -> None:
        """RevokeTokens for `target` (token, token_id or subject), as the holder of `as_token`."""
        await self.call(self.stub.RevokeTokens, pb.RevokeTokensRequest(**target), as_token)

    async def check(
        self, principal: str, tenant: str, permission: str, token: str | None = None
    ) -> bool:
        """Check, asked by the holder of `token` (the platform admin by default)."""
        request = pb.CheckRequest(principal=principal, tenant=tenant, permission=permission)
        return (await self.call(self.stub.Check, request, token)).allowed

    async def batch_check(
        self, checks: list[tuple[str, str, str]], token: str | None = None
    ) -> list[bool]:
        """BatchCheck, asked by the holder of `token` (the platform admin by default)."""
        request = pb.BatchCheckRequest(
            requests=[
                pb.CheckRequest(principal=principal, tenant=tenant, permission=permission)
                for principal, tenant, permission in checks
            ]
        )
        response = await self.call(self.stub.BatchCheck, request, token)
        return [decision.allowed for decision in response.responses]

    async def jwks_verifier(self) -> TokenVerifier:
        """A local verifier over the service's current JWKS."""
        with translate_rpc_errors():
            jwks = await self.stub.GetJwks(pb.GetJwksRequest())
        settings = self.service.settings
        return TokenVerifier(
            KeySet.from_jwks(jwks.json_document),
            VerificationPolicy(settings.issuer, settings.audience),
        )

    def client_config(self, **options: Any) -> AuthClientConfig:
        """The config of an AuthClient that reaches this service and expects its issuer and
        audience."""
        settings = self.service.settings
        return AuthClientConfig(
            target=self.target, issuer=settings.issuer, audience=settings.audience, **options
        )

    async def add_root(self) -> None:
        """Bootstrap the platform admin `tenants/platform/users/root` as an operator would, and
        log it in: calls carry its token from now on."""
        await bootstrap_platform_admin(
            self.service.database,
            PasswordHasher(),
            tenant="tenants/platform",
            username="root",
            password=ROOT_PASSWORD,
        )
        await self.service.policy.refresh()
        self.root_token = await self.access_token("tenants/platform", "root", ROOT_PASSWORD)

    async def seed(
        self, tenant: str, *users: str, role: str = "member", now: datetime | None = None
    ) -> None:
        """Create `tenant` (unless it exists) with its default roles, and `users` holding
        `role` (password PASSWORD), straight in the store; the service's policy picks them up
        now rather than at its next poll."""
        await seed_tenant(
            self.service.database, tenant, *users, password=PASSWORD, role=role, now=now
        )
        await self.service.policy.refresh()

    async def make_platform_admin(self, principal: str) -> None:
        """Give `principal` the platform-admin role, straight in the store (picked up now, as
        `seed`'s are)."""
        await grant_platform_admin(self.service.database, principal)
        await self.service.policy.refresh()

    async def add_lines(self, lines: list[PolicyLine]) -> None:
        """Store policy lines directly (whatever they say), and load them here."""
        async with self.service.database.session() as session:
            await seed_policy(session, lines)
        await self.service.policy.refresh()


AuthSettingsFactory = Callable[..., AuthSettings]
ServeAuth = Callable[..., AbstractAsyncContextManager[Served]]


@pytest.fixture
def auth_settings(tmp_path: Path) -> AuthSettingsFactory:
    """`auth_settings(database, **overrides)`: a service on a free port of 127.0.0.1 with no
    metrics listener, whose sealing key is generated into `tmp_path`. One sealing key for
    every service of a test: a replica opens the signing keys another one made."""

    def settings(database: str, **overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "metrics_listen": "",
            "database_url": database,
            "signing_key_encryption_key_file": tmp_path / "sealing.key",
        }
        return AuthSettings(**(values | overrides))

    return settings


@pytest.fixture
def serve_auth(auth_settings: AuthSettingsFactory) -> ServeAuth:
    """`async with serve_auth(database, **settings) as served:` an auth service of the test's
    own settings (see `auth_settings`), stopped with its channel at the end of the block."""

    @asynccontextmanager
    async def serve(database: str, **overrides: Any) -> AsyncIterator[Served]:
        service = AuthService(auth_settings(database, **overrides))
        async with ServiceServer(service) as running:
            target = f"127.0.0.1:{running.port}"
            channel = grpc.aio.insecure_channel(target)
            try:
                yield Served(service, target, auth_service_pb2_grpc.AuthServiceStub(channel))
            finally:
                await channel.close(None)

    return serve


@pytest.fixture
async def server(fresh_database_url: str, serve_auth: ServeAuth) -> AsyncIterator[Served]:
    """A served auth service on an empty database of this test's own, with a platform admin."""
    async with serve_auth(fresh_database_url) as served:
        await served.add_root()
        yield served


@pytest.fixture
async def migrated_sqlite(sqlite_url: str) -> AsyncIterator[DatabasePool]:
    """A migrated, started SQLite database of this test's own."""
    pool = DatabasePool(sqlite_url)
    await migrate_database(pool)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()
