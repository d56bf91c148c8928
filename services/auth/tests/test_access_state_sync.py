"""Revocations and disabled principals reach every replica: two AuthService replicas on one
database, on SQLite and PostgreSQL.

Replica A and replica B are two servers in this process, each with its own database pool
and its own polling `AccessStateSync`, sharing nothing but the database. A change made
through one replica refuses the token there at once (asserted with no wait) and on the
other within a bounded wait; no test asserts on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mainmast.auth.v1 import auth_service_pb2 as pb
from mainmast.auth.v1 import auth_service_pb2_grpc
from mainmast.db import DatabasePool
from mainmast.errors import UnauthenticatedError, translate_rpc_errors
from mainmast_auth import _access_state_sync
from mainmast_auth._access_state import AccessSnapshot
from mainmast_auth._access_state_sync import AccessStateSync
from mainmast_auth._resource_names import PrincipalKind
from mainmast_auth._store_tokens import revoke_token_ids
from mainmast_auth.service import AuthService
from mainmast_auth.testing import eventually

PASSWORD = "correct horse battery staple"
LIFETIME = timedelta(minutes=15)
LEEWAY = timedelta(seconds=30)


@dataclass
class Replica:
    """One running auth service and a stub on it."""

    name: str
    service: AuthService
    stub: auth_service_pb2_grpc.AuthServiceAsyncStub

    async def refusal(self, token: str) -> str | None:
        """The reason this replica refuses a call made with `token`, or None if it accepts it
        (IntrospectToken needs nothing but an authenticated caller)."""
        request = pb.IntrospectTokenRequest(token=token)
        try:
            with translate_rpc_errors():
                await self.stub.IntrospectToken(
                    request, metadata=(("authorization", f"Bearer {token}"),)
                )
        except UnauthenticatedError as exc:
            return exc.reason
        return None


@dataclass
class Fleet:
    """Two replicas, the platform admin's token, and helpers to act through either."""

    a: Replica
    b: Replica
    root: str

    async def call(self, replica: Replica, method: str, request: Any, token: str = "") -> Any:
        """`method(request)` on `replica` as the holder of `token` (root's by default)."""
        metadata = (("authorization", f"Bearer {token or self.root}"),)
        with translate_rpc_errors():
            return await getattr(replica.stub, method)(request, metadata=metadata)

    async def login(self, replica: Replica, tenant: str, username: str) -> pb.IssueTokenResponse:
        """A password grant through `replica`."""
        request = pb.IssueTokenRequest(
            password=pb.IssueTokenRequest.PasswordGrant(
                tenant=tenant, username=username, password=PASSWORD
            )
        )
        with translate_rpc_errors():
            return await replica.stub.IssueToken(request)

    async def add_user(self, tenant: str, user_id: str) -> str:
        """Create `user_id` in `tenant` (through A) and log it in; its access token."""
        return (await self.add_user_login(tenant, user_id)).access_token

    async def add_user_login(self, tenant: str, user_id: str) -> pb.IssueTokenResponse:
        """Create `user_id` in `tenant` (through A) and log it in."""
        await self.call(
            self.a,
            "CreateUser",
            pb.CreateUserRequest(parent=tenant, user_id=user_id, password=PASSWORD),
        )
        return await self.login(self.a, tenant, user_id)


@pytest.fixture
async def fleet(fresh_database_url: str, serve_auth: Any) -> AsyncIterator[Fleet]:
    """Replicas A and B on one database, with a platform admin and tenants acme and globex."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(serve_auth(fresh_database_url))
        await a.add_root()
        b = await stack.enter_async_context(serve_auth(fresh_database_url))
        fleet = Fleet(
            Replica("A", a.service, a.stub), Replica("B", b.service, b.stub), a.root_token
        )
        for tenant_id in ("acme", "globex"):
            await fleet.call(fleet.a, "CreateTenant", pb.CreateTenantRequest(tenant_id=tenant_id))
        yield fleet


async def _refused_on(replica: Replica, token: str, reason: str) -> bool:
    return await replica.refusal(token) == reason


@pytest.mark.parametrize("through", ["A", "B"])
async def test_a_token_revoked_through_one_replica_is_refused_there_at_once_and_soon_on_the_other(
    fleet: Fleet, through: str
) -> None:
    here, there = (fleet.a, fleet.b) if through == "A" else (fleet.b, fleet.a)
    by_value = await fleet.add_user("tenants/acme", "alice")
    bob = await fleet.add_user_login("tenants/acme", "bob")
    by_id = bob.access_token
    by_subject = await fleet.add_user("tenants/acme", "carol")
    bystander = await fleet.add_user("tenants/acme", "dave")
    for token in (by_value, by_id, by_subject):
        assert await there.refusal(token) is None

    await fleet.call(here, "RevokeTokens", pb.RevokeTokensRequest(token=by_value))
    await fleet.call(here, "RevokeTokens", pb.RevokeTokensRequest(token_id=bob.token_id))
    await fleet.call(
        here, "RevokeTokens", pb.RevokeTokensRequest(subject="tenants/acme/users/carol")
    )

    for token in (by_value, by_id, by_subject):
        assert await here.refusal(token) == "TOKEN_REVOKED"
    for token in (by_value, by_id, by_subject):
        assert await eventually(lambda token=token: _refused_on(there, token, "TOKEN_REVOKED"))
    assert await there.refusal(bystander) is None
    # A subject's revocation covers the tokens issued before it, not the next login.
    # (iat has whole seconds: a login in the second of the revocation would count as before.)
    await asyncio.sleep(1.0)
    carol_again = (await fleet.login(there, "tenants/acme", "carol")).access_token
    assert await here.refusal(carol_again) is None
    assert await there.refusal(carol_again) is None


async def test_disabled_users_service_accounts_and_tenants_are_refused_on_every_replica(
    fleet: Fleet,
) -> None:
    alice = await fleet.add_user("tenants/acme", "alice")
    bob = await fleet.add_user("tenants/acme", "bob")
    globex = await fleet.add_user("tenants/globex", "gina")
    created = await fleet.call(
        fleet.a,
        "CreateServiceAccount",
        pb.CreateServiceAccountRequest(parent="tenants/acme", service_account_id="payments"),
    )
    grant = pb.IssueTokenRequest(
        client_credentials=pb.IssueTokenRequest.ClientCredentialsGrant(
            client_id=created.service_account.client_id,
            client_secret=created.client_secret,
        )
    )
    with translate_rpc_errors():
        payments = (await fleet.b.stub.IssueToken(grant)).access_token

    await fleet.call(fleet.a, "DisableUser", pb.DisableUserRequest(name="tenants/acme/users/alice"))
    await fleet.call(
        fleet.b,
        "DisableServiceAccount",
        pb.DisableServiceAccountRequest(name="tenants/acme/serviceAccounts/payments"),
    )
    await fleet.call(fleet.a, "DisableTenant", pb.DisableTenantRequest(name="tenants/globex"))

    assert await fleet.a.refusal(alice) == "USER_DISABLED"
    assert await fleet.b.refusal(payments) == "SERVICE_ACCOUNT_DISABLED"
    assert await fleet.a.refusal(globex) == "TENANT_DISABLED"
    assert await eventually(lambda: _refused_on(fleet.b, alice, "USER_DISABLED"))
    assert await eventually(lambda: _refused_on(fleet.a, payments, "SERVICE_ACCOUNT_DISABLED"))
    assert await eventually(lambda: _refused_on(fleet.b, globex, "TENANT_DISABLED"))
    assert await fleet.a.refusal(bob) is None
    assert await fleet.b.refusal(bob) is None


async def test_the_replicas_versions_meet_once_the_changes_are_polled_up(fleet: Fleet) -> None:
    alice = await fleet.add_user("tenants/acme", "alice")
    await fleet.call(fleet.a, "RevokeTokens", pb.RevokeTokensRequest(token=alice))
    await fleet.call(fleet.b, "DisableUser", pb.DisableUserRequest(name="tenants/acme/users/alice"))

    async def same_version() -> bool:
        versions = {fleet.a.service.access.version, fleet.b.service.access.version}
        return len(versions) == 1

    assert await eventually(same_version)
    assert fleet.a.service.access.version is not None


@pytest.fixture
def database(migrated_sqlite: DatabasePool) -> DatabasePool:
    """A migrated, started SQLite database of this test's own."""
    return migrated_sqlite


def _sync(database: DatabasePool, poll_interval: float = 60.0) -> AccessStateSync:
    return AccessStateSync(
        database, token_lifetime=LIFETIME, leeway=LEEWAY, poll_interval=poll_interval
    )


def _revoked(sync: AccessStateSync, token_id: str) -> bool:
    reason = sync.state.refusal(
        token_id=token_id,
        subject="tenants/acme/users/alice",
        tenant="tenants/acme",
        issued_at=datetime.now(UTC).timestamp(),
        kind=PrincipalKind.USER,
    )
    return reason is not None


async def _revoke(database: DatabasePool, token_id: str) -> None:
    async with database.session() as session:
        now = datetime.now(UTC)
        await revoke_token_ids(session, [(token_id, now + LIFETIME)], now=now)


async def test_refresh_reloads_only_when_the_version_moved(database: DatabasePool) -> None:
    sync = _sync(database)
    assert await sync.refresh()
    assert not await sync.refresh()
    before = sync.version
    assert before is not None
    await _revoke(database, "jti-1")
    assert not _revoked(sync, "jti-1")
    assert await sync.refresh()
    assert sync.version == before + 1
    assert _revoked(sync, "jti-1")


async def test_a_local_change_survives_a_reload_that_read_the_store_before_it(
    database: DatabasePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = _sync(database)
    await sync.refresh()
    loaded, resume = asyncio.Event(), asyncio.Event()
    real_load = _access_state_sync.load_access_state

    async def load_then_wait(*args: Any, **kwargs: Any) -> AccessSnapshot:
        snapshot = await real_load(*args, **kwargs)
        loaded.set()
        await resume.wait()
        return snapshot

    monkeypatch.setattr(_access_state_sync, "load_access_state", load_then_wait)
    await _revoke(database, "jti-other-writer")
    reload = asyncio.create_task(sync.refresh())
    await loaded.wait()
    # Committed and applied locally after the reload read the store, before it swaps in.
    await _revoke(database, "jti-local")
    sync.token_revoked("jti-local", datetime.now(UTC) + LIFETIME)
    assert _revoked(sync, "jti-local")
    resume.set()
    assert await reload
    assert _revoked(sync, "jti-other-writer")
    assert _revoked(sync, "jti-local")
