"""Policy changes reach every replica: two AuthService replicas on one database.

Replica A and replica B are two servers in this process, each with its own database pool
and its own polling `PolicySync`, sharing nothing but the database (SQLite file or
PostgreSQL). A change made through one is waited for on the other with a bounded wait;
no test asserts on time.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from mainmast.auth.v1 import auth_service_pb2 as pb
from mainmast.db import DatabasePool
from mainmast_auth._admin_service import bootstrap_platform_admin
from mainmast_auth._authorizer import Authorizer
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._policy_sync import PolicySync
from mainmast_auth._store_policies import save_policy_changes
from mainmast_auth.testing import eventually

ROOT_PASSWORD = "the platform's own long passphrase"
PASSWORD = "correct horse battery staple"

Replica = Any  # the conftest's `Served`, which a test module cannot import


async def test_a_change_through_one_replica_is_enforced_by_the_other(
    fresh_database_url: str, serve_auth: Any
) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(serve_auth(fresh_database_url))
        await bootstrap_platform_admin(
            a.service.database,
            PasswordHasher(),
            tenant="tenants/platform",
            username="root",
            password=ROOT_PASSWORD,
        )
        b = await stack.enter_async_context(serve_auth(fresh_database_url))
        root = await a.access_token("tenants/platform", "root", ROOT_PASSWORD)

        async def call(replica: Replica, method: str, request: Any) -> Any:
            return await replica.call(getattr(replica.stub, method), request, root)

        async def allowed_on(replica: Replica) -> bool:
            response = await call(
                replica,
                "Check",
                pb.CheckRequest(
                    principal="tenants/acme/users/alice",
                    tenant="tenants/acme",
                    permission="invoices:write",
                ),
            )
            return bool(response.allowed)

        # The bootstrap reached A by polling too: A accepts the admin's calls.
        assert await eventually(lambda: _is_platform_admin(a, "tenants/platform/users/root"))
        await call(a, "CreateTenant", pb.CreateTenantRequest(tenant_id="acme"))
        await call(
            a,
            "CreateUser",
            pb.CreateUserRequest(parent="tenants/acme", user_id="alice", password=PASSWORD),
        )
        await call(
            a,
            "AssignRole",
            pb.AssignRoleRequest(
                principal="tenants/acme/users/alice", role="tenants/acme/roles/member"
            ),
        )
        assert not await allowed_on(b)

        await call(
            a,
            "GrantRolePermission",
            pb.GrantRolePermissionRequest(
                role="tenants/acme/roles/member", permission="invoices:write"
            ),
        )
        # The replica that made the change enforces it at once; the other one soon.
        assert await allowed_on(a)
        assert await eventually(lambda: allowed_on(b))

        await call(
            b,
            "RevokeRolePermission",
            pb.RevokeRolePermissionRequest(
                role="tenants/acme/roles/member", permission="invoices:write"
            ),
        )
        assert not await allowed_on(b)
        assert await eventually(lambda: _negated(allowed_on(a)))

        async def same_version() -> bool:
            # A replica that commits while another writer's change is still unseen marks
            # the gap and catches up on its next poll, so the versions meet soon, not at once.
            return a.service.policy.version == b.service.policy.version

        assert await eventually(same_version)


async def _negated(value: Awaitable[bool]) -> bool:
    return not await value


async def _is_platform_admin(replica: Replica, principal: str) -> bool:
    return replica.service.policy.authorizer.is_platform_admin(principal)


@pytest.fixture
def database(migrated_sqlite: DatabasePool) -> DatabasePool:
    """A migrated, started SQLite database of this test's own."""
    return migrated_sqlite


async def _grant(pool: DatabasePool, role: str, permission: str) -> int:
    async with pool.session() as session:
        return await save_policy_changes(session, Authorizer().grant_permission(role, permission))


async def test_refresh_reloads_only_when_the_version_moved(database: DatabasePool) -> None:
    sync = PolicySync(database, poll_interval=60.0)
    assert await sync.refresh()
    assert not await sync.refresh()
    before = sync.version
    assert before is not None
    await _grant(database, "tenants/acme/roles/viewer", "x:read")
    assert not sync.authorizer.permissions_of("tenants/acme/roles/viewer")
    assert await sync.refresh()
    assert sync.version == before + 1
    assert sync.authorizer.permissions_of("tenants/acme/roles/viewer") == ["x:read"]


async def test_a_local_change_is_applied_at_once_and_a_gap_forces_a_reload(
    database: DatabasePool,
) -> None:
    sync = PolicySync(database, poll_interval=60.0)
    await sync.refresh()
    start = sync.version
    assert start is not None
    changes = Authorizer().grant_permission("tenants/acme/roles/viewer", "x:read")
    async with database.session() as session:
        version = await sync.commit_changes(session, changes)
    sync.applied(changes, version)
    assert sync.version == start + 1
    assert not await sync.refresh()
    assert sync.authorizer.permissions_of("tenants/acme/roles/viewer") == ["x:read"]

    # Another writer's change lands between this replica's version and its own change.
    await _grant(database, "tenants/acme/roles/viewer", "y:read")
    changes = Authorizer().grant_permission("tenants/acme/roles/viewer", "z:read")
    async with database.session() as session:
        version = await sync.commit_changes(session, changes)
    sync.applied(changes, version)
    assert sync.version == start + 1
    assert await sync.refresh()
    assert sync.version == start + 3
    assert sync.authorizer.permissions_of("tenants/acme/roles/viewer") == [
        "x:read",
        "y:read",
        "z:read",
    ]
