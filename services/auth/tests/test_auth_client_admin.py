"""AuthClient's permission checks and admin calls against a real auth service.

A platform admin is bootstrapped straight into the database (as the CLI does on a fresh
install); everything after that goes through the client: tenants, users, service
accounts, roles and grants, then Check and BatchCheck with the decision cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from mainmast.auth import (
    AuthClient,
    AuthClientConfig,
    AuthErrorReason,
    CheckQuery,
    ResourceState,
)
from mainmast.errors import PermissionDeniedError

PASSWORD = "correct horse battery staple"
ALICE = "tenants/acme/users/alice"
VIEWER = "tenants/acme/roles/viewer"


@dataclass
class Platform:
    """A running auth service, a client config for it, a connected client and root's token."""

    config: AuthClientConfig
    auth: AuthClient
    root_token: str


@pytest.fixture
async def platform(server: Any) -> AsyncIterator[Platform]:
    """The conftest's server, with the platform admin `tenants/platform/users/root`, and a
    client connected to it."""
    config = server.client_config()
    async with AuthClient(config=config) as auth:
        yield Platform(config, auth, server.root_token)


async def _acme_with_alice(platform: Platform) -> str:
    """Create tenants/acme and its viewer alice; alice's access token."""
    auth, root = platform.auth, platform.root_token
    await auth.create_tenant("acme", display_name="Acme", bearer_token=root)
    await auth.create_user("tenants/acme", "alice", PASSWORD, bearer_token=root)
    await auth.assign_role(ALICE, VIEWER, bearer_token=root)
    return (await auth.login("tenants/acme", "alice", PASSWORD)).access_token


async def test_tenants_users_and_service_accounts_are_administered_through_the_client(
    platform: Platform,
) -> None:
    auth, root = platform.auth, platform.root_token
    tenant = await auth.create_tenant("acme", display_name="Acme", bearer_token=root)
    user = await auth.create_user(
        "tenants/acme", "alice", PASSWORD, email="alice@acme.test", bearer_token=root
    )
    created = await auth.create_service_account(
        "tenants/acme", "payments-api", description="payments", bearer_token=root
    )
    fetched_tenant = await auth.get_tenant("tenants/acme", bearer_token=root)
    fetched_user = await auth.get_user(ALICE, bearer_token=root)
    users = await auth.list_users("tenants/acme", bearer_token=root)
    tenants = await auth.list_tenants(bearer_token=root)
    accounts = await auth.list_service_accounts("tenants/acme", bearer_token=root)
    account = await auth.get_service_account(created.service_account.name, bearer_token=root)
    service_tokens = await auth.client_credentials(
        created.service_account.client_id, created.client_secret
    )

    assert (tenant.name, tenant.display_name, tenant.state) == (
        "tenants/acme",
        "Acme",
        ResourceState.ACTIVE,
    )
    assert fetched_tenant == tenant
    assert (user.name, user.email, user.state) == (ALICE, "alice@acme.test", ResourceState.ACTIVE)
    assert fetched_user == user
    assert [item.name for item in users.items] == [ALICE]
    assert users.next_page_token is None
    assert {"tenants/acme", "tenants/platform"} <= {item.name for item in tenants.items}
    assert account == created.service_account
    assert [item.name for item in accounts.items] == [account.name]
    assert account.description == "payments"
    assert created.client_secret not in repr(created)
    assert service_tokens.subject == account.name


async def test_disabling_and_password_changes_take_effect(platform: Platform) -> None:
    auth, root = platform.auth, platform.root_token
    await _acme_with_alice(platform)
    created = await auth.create_service_account("tenants/acme", "batch", bearer_token=root)

    changed = await auth.set_user_password(ALICE, "a brand new long passphrase", bearer_token=root)
    relogin = await auth.login("tenants/acme", "alice", "a brand new long passphrase")
    disabled_user = await auth.disable_user(ALICE, bearer_token=root)
    disabled_account = await auth.disable_service_account(
        created.service_account.name, bearer_token=root
    )
    disabled_tenant = await auth.disable_tenant("tenants/acme", bearer_token=root)

    assert changed.update_time is not None
    assert relogin.subject == ALICE
    assert disabled_user.state is ResourceState.DISABLED
    assert disabled_account.state is ResourceState.DISABLED
    assert disabled_tenant.state is ResourceState.DISABLED


async def test_roles_and_grants_decide_checks(platform: Platform) -> None:
    auth, root = platform.auth, platform.root_token
    alice = await _acme_with_alice(platform)
    before = await auth.check("tenants/acme", "reports:export", bearer_token=alice)

    grant = await auth.grant_role_permission(VIEWER, "reports:export", bearer_token=root)
    after = await auth.check("tenants/acme", "reports:export", bearer_token=alice)
    assignments = await auth.list_role_assignments(
        "tenants/acme", principal=ALICE, bearer_token=root
    )
    permissions = await auth.list_role_permissions(VIEWER, bearer_token=root)
    decisions = await auth.check_many(
        [
            CheckQuery(ALICE, "tenants/acme", "reports:export"),
            CheckQuery(ALICE, "tenants/acme", "reports:delete"),
            CheckQuery(ALICE, "tenants/acme", "reports:export"),
        ],
        bearer_token=alice,
    )
    await auth.unassign_role(ALICE, VIEWER, bearer_token=root)
    unassigned = await auth.check("tenants/acme", "reports:export", bearer_token=alice)
    with pytest.raises(PermissionDeniedError) as denied:
        await auth.check(
            "tenants/platform",
            "reports:export",
            principal="tenants/platform/users/root",
            bearer_token=alice,
        )

    assert (before, after, unassigned) == (False, True, False)
    assert (grant.role, grant.permission) == (VIEWER, "reports:export")
    assert [(item.principal, item.role) for item in assignments.items] == [(ALICE, VIEWER)]
    assert "reports:export" in {item.permission for item in permissions.items}
    assert decisions == [True, False, True]
    assert denied.value.reason == AuthErrorReason.PERMISSION_MISSING


async def test_decisions_are_reused_within_the_cache_ttl_and_not_without_a_cache(
    platform: Platform,
) -> None:
    auth, root = platform.auth, platform.root_token
    alice = await _acme_with_alice(platform)
    await auth.grant_role_permission(VIEWER, "reports:export", bearer_token=root)
    # A TTL far longer than the test, so the cached answer cannot expire mid-test.
    caching = dataclasses.replace(platform.config, decision_cache_ttl_seconds=3600)
    uncached = dataclasses.replace(platform.config, decision_cache_ttl_seconds=0)
    query = CheckQuery(ALICE, "tenants/acme", "reports:export")
    async with (
        AuthClient(config=caching) as cached_client,
        AuthClient(config=uncached) as fresh_client,
    ):
        first = await cached_client.check("tenants/acme", "reports:export", bearer_token=alice)
        first_many = await cached_client.check_many([query], bearer_token=alice)
        # Changed through another client: the caching one does not hear of it.
        await auth.revoke_role_permission(VIEWER, "reports:export", bearer_token=root)
        stale = await cached_client.check("tenants/acme", "reports:export", bearer_token=alice)
        stale_many = await cached_client.check_many([query], bearer_token=alice)
        current = await fresh_client.check("tenants/acme", "reports:export", bearer_token=alice)
        current_many = await fresh_client.check_many([query], bearer_token=alice)

    assert (first, first_many) == (True, [True])
    assert (stale, stale_many) == (True, [True])
    assert (current, current_many) == (False, [False])
