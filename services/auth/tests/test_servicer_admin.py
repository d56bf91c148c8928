"""The admin RPCs over a real server: AuthService on 127.0.0.1, on SQLite and PostgreSQL.

A platform admin is bootstrapped in `tenants/platform`; everything else is done through
the RPCs with real tokens, so each call is authorised as in production.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog.testing
from google.protobuf.message import Message

from mainmast.auth.v1 import auth_service_pb2 as pb
from mainmast.auth.v1 import resources_pb2
from mainmast.errors import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    ValidationError,
    translate_rpc_errors,
)
from mainmast_auth._admin_service import bootstrap_platform_admin
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._store_directory import find_service_account

ROOT = "tenants/platform/users/root"
ROOT_PASSWORD = "the platform's own long passphrase"
PASSWORD = "correct horse battery staple"

Server = Any  # the conftest's `Served`, which a test module cannot import


async def _tenant_with_admin(server: Server, tenant_id: str, username: str = "alice") -> str:
    """Create `tenants/{tenant_id}` and a user holding its admin role; the user's token."""
    tenant = f"tenants/{tenant_id}"
    await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id=tenant_id))
    await server.call(
        server.stub.CreateUser,
        pb.CreateUserRequest(parent=tenant, user_id=username, password=PASSWORD),
    )
    await server.call(
        server.stub.AssignRole,
        pb.AssignRoleRequest(principal=f"{tenant}/users/{username}", role=f"{tenant}/roles/admin"),
    )
    return await server.access_token(tenant, username)


async def test_create_tenant_makes_the_four_default_roles_and_audits_it(server: Server) -> None:
    with structlog.testing.capture_logs() as events:
        created = await server.call(
            server.stub.CreateTenant,
            pb.CreateTenantRequest(
                tenant_id="acme", tenant=resources_pb2.Tenant(display_name="Acme Corp")
            ),
        )
    assert created.tenant.name == "tenants/acme"
    assert created.tenant.display_name == "Acme Corp"
    assert created.tenant.state == resources_pb2.Tenant.STATE_ACTIVE
    assert created.tenant.HasField("create_time")
    grants = {}
    for role in ("owner", "admin", "member", "viewer"):
        listed = await server.call(
            server.stub.ListRolePermissions,
            pb.ListRolePermissionsRequest(role=f"tenants/acme/roles/{role}"),
        )
        grants[role] = [grant.permission for grant in listed.role_permissions]
    assert grants == {
        "owner": ["*:*"],
        "admin": ["roles:*", "service-accounts:*", "tokens:revoke", "users:*"],
        "member": [],
        "viewer": ["*:read"],
    }
    [audit] = [event for event in events if event["event"] == "auth.tenant_created"]
    assert audit["tenant"] == "tenants/acme"
    assert audit["subject"] == ROOT

    with pytest.raises(AlreadyExistsError):
        await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme"))
    with pytest.raises(ValidationError) as invalid:
        await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="Acme!"))
    assert invalid.value.reason == "INVALID_RESOURCE_ID"


async def test_only_platform_admins_create_or_disable_tenants(server: Server) -> None:
    alice = await _tenant_with_admin(server, "acme")
    with pytest.raises(PermissionDeniedError) as denied:
        await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="x1"), alice)
    assert denied.value.reason == "PERMISSION_MISSING"
    # Even its own tenant: disabling a tenant is a platform act.
    with pytest.raises(PermissionDeniedError):
        await server.call(
            server.stub.DisableTenant, pb.DisableTenantRequest(name="tenants/acme"), alice
        )
    disabled = await server.call(
        server.stub.DisableTenant, pb.DisableTenantRequest(name="tenants/acme")
    )
    assert disabled.tenant.state == resources_pb2.Tenant.STATE_DISABLED
    with pytest.raises(UnauthenticatedError) as refused:
        await server.access_token("tenants/acme", "alice")
    assert refused.value.reason == "TENANT_DISABLED"
    with pytest.raises(NotFoundError):
        await server.call(server.stub.DisableTenant, pb.DisableTenantRequest(name="tenants/nope"))


async def test_another_tenant_is_permission_denied_before_not_found(server: Server) -> None:
    alice = await _tenant_with_admin(server, "acme")
    await _tenant_with_admin(server, "globex", "bob")
    # In its own tenant a missing user is NOT_FOUND ...
    with pytest.raises(NotFoundError):
        await server.call(
            server.stub.GetUser, pb.GetUserRequest(name="tenants/acme/users/nobody"), alice
        )
    # ... but in another tenant existing and missing resources are denied alike.
    for name in ("tenants/globex/users/bob", "tenants/globex/users/nobody"):
        with pytest.raises(PermissionDeniedError):
            await server.call(server.stub.GetUser, pb.GetUserRequest(name=name), alice)
    for tenant in ("tenants/globex", "tenants/missing"):
        calls: list[tuple[Callable[..., Awaitable[Any]], Message]] = [
            (server.stub.GetTenant, pb.GetTenantRequest(name=tenant)),
            (server.stub.ListUsers, pb.ListUsersRequest(parent=tenant)),
            (server.stub.ListServiceAccounts, pb.ListServiceAccountsRequest(parent=tenant)),
            (server.stub.ListRoleAssignments, pb.ListRoleAssignmentsRequest(parent=tenant)),
            (
                server.stub.CreateUser,
                pb.CreateUserRequest(parent=tenant, user_id="mallory", password=PASSWORD),
            ),
            (
                server.stub.GrantRolePermission,
                pb.GrantRolePermissionRequest(role=f"{tenant}/roles/viewer", permission="*:*"),
            ),
            (
                server.stub.AssignRole,
                pb.AssignRoleRequest(principal=f"{tenant}/users/bob", role=f"{tenant}/roles/owner"),
            ),
        ]
        for method, request in calls:
            with pytest.raises(PermissionDeniedError):
                await server.call(method, request, alice)
    # A tenant admin cannot hand out the platform role, not even to itself.
    with pytest.raises(PermissionDeniedError):
        await server.call(
            server.stub.AssignRole,
            pb.AssignRoleRequest(principal="tenants/acme/users/alice", role="roles/platform-admin"),
            alice,
        )
    # Nor give its principals a role of another tenant.
    with pytest.raises(ValidationError) as mismatch:
        await server.call(
            server.stub.AssignRole,
            pb.AssignRoleRequest(
                principal="tenants/acme/users/alice", role="tenants/globex/roles/owner"
            ),
            alice,
        )
    assert mismatch.value.reason == "ROLE_TENANT_MISMATCH"


async def test_users_are_created_disabled_and_given_new_passwords_under_the_rules(
    server: Server,
) -> None:
    alice = await _tenant_with_admin(server, "acme")
    with pytest.raises(ValidationError) as weak:
        await server.call(
            server.stub.CreateUser,
            pb.CreateUserRequest(parent="tenants/acme", user_id="bob", password="short"),
            alice,
        )
    assert weak.value.reason == "PASSWORD_POLICY_VIOLATION"
    with structlog.testing.capture_logs() as events:
        created = await server.call(
            server.stub.CreateUser,
            pb.CreateUserRequest(
                parent="tenants/acme",
                user_id="bob",
                user=resources_pb2.User(display_name="Bob", email="bob@example.com"),
                password=PASSWORD,
            ),
            alice,
        )
    assert created.user.name == "tenants/acme/users/bob"
    assert (created.user.display_name, created.user.email) == ("Bob", "bob@example.com")
    assert created.user.state == resources_pb2.User.STATE_ACTIVE
    assert created.user.uid
    [audit] = [event for event in events if event["event"] == "auth.user_created"]
    assert (audit["tenant"], audit["subject"]) == ("tenants/acme", "tenants/acme/users/alice")
    assert PASSWORD not in repr(events)

    fetched = await server.call(
        server.stub.GetUser, pb.GetUserRequest(name="tenants/acme/users/bob"), alice
    )
    assert fetched.user == created.user

    # A member may read but not create.
    bob = await server.access_token("tenants/acme", "bob")
    with pytest.raises(PermissionDeniedError):
        await server.call(
            server.stub.CreateUser,
            pb.CreateUserRequest(parent="tenants/acme", user_id="carol", password=PASSWORD),
            bob,
        )

    new_password = "an entirely different passphrase"
    with pytest.raises(ValidationError) as contains_name:
        await server.call(
            server.stub.SetUserPassword,
            pb.SetUserPasswordRequest(name="tenants/acme/users/bob", password="bob-bob-bob-bob-1"),
            alice,
        )
    assert contains_name.value.reason == "PASSWORD_POLICY_VIOLATION"
    updated = await server.call(
        server.stub.SetUserPassword,
        pb.SetUserPasswordRequest(name="tenants/acme/users/bob", password=new_password),
        alice,
    )
    assert updated.user.update_time.ToDatetime() > created.user.update_time.ToDatetime()
    with pytest.raises(UnauthenticatedError):
        await server.access_token("tenants/acme", "bob")
    await server.access_token("tenants/acme", "bob", new_password)

    with structlog.testing.capture_logs() as events:
        disabled = await server.call(
            server.stub.DisableUser, pb.DisableUserRequest(name="tenants/acme/users/bob"), alice
        )
    assert disabled.user.state == resources_pb2.User.STATE_DISABLED
    assert any(event["event"] == "auth.user_disabled" for event in events)
    with pytest.raises(UnauthenticatedError) as refused:
        await server.access_token("tenants/acme", "bob", new_password)
    assert refused.value.reason == "USER_DISABLED"


async def test_a_service_account_secret_is_shown_once_and_stored_only_as_a_hash(
    server: Server,
) -> None:
    alice = await _tenant_with_admin(server, "acme")
    created = await server.call(
        server.stub.CreateServiceAccount,
        pb.CreateServiceAccountRequest(
            parent="tenants/acme",
            service_account_id="payments-api",
            service_account=resources_pb2.ServiceAccount(description="Takes payments"),
        ),
        alice,
    )
    account = created.service_account
    assert account.name == "tenants/acme/serviceAccounts/payments-api"
    assert account.description == "Takes payments"
    assert len(created.client_secret) >= 40
    async with server.service.database.session() as session:
        row = await find_service_account(session, account.name)
    assert row is not None
    assert created.client_secret not in row.secret_hash
    assert row.secret_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(row.secret_hash, created.client_secret)

    fetched = await server.call(
        server.stub.GetServiceAccount, pb.GetServiceAccountRequest(name=account.name), alice
    )
    assert fetched.service_account == account
    assert created.client_secret not in str(fetched)

    grant = pb.IssueTokenRequest(
        client_credentials=pb.IssueTokenRequest.ClientCredentialsGrant(
            client_id=account.client_id, client_secret=created.client_secret
        )
    )
    with translate_rpc_errors():
        issued = await server.stub.IssueToken(grant)
    assert issued.subject == account.name

    disabled = await server.call(
        server.stub.DisableServiceAccount,
        pb.DisableServiceAccountRequest(name=account.name),
        alice,
    )
    assert disabled.service_account.state == resources_pb2.ServiceAccount.STATE_DISABLED
    with pytest.raises(UnauthenticatedError) as refused, translate_rpc_errors():
        await server.stub.IssueToken(grant)
    assert refused.value.reason == "SERVICE_ACCOUNT_DISABLED"


async def test_lists_page_through_everything_in_order_and_refuse_foreign_tokens(
    server: Server,
) -> None:
    alice = await _tenant_with_admin(server, "acme")
    await _tenant_with_admin(server, "globex", "bob")
    names = ["alice"]
    for user_id in ("erin", "dave", "carol", "bob"):
        await server.call(
            server.stub.CreateUser,
            pb.CreateUserRequest(parent="tenants/acme", user_id=user_id, password=PASSWORD),
            alice,
        )
        names.append(user_id)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await server.call(
            server.stub.ListUsers,
            pb.ListUsersRequest(parent="tenants/acme", page_size=2, page_token=token),
            alice,
        )
        seen += [user.name.rpartition("/")[2] for user in page.users]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(names)
    assert pages == 3

    first = await server.call(
        server.stub.ListUsers, pb.ListUsersRequest(parent="tenants/acme", page_size=2), alice
    )
    # A token belongs to its request: another parent, or a damaged token, is refused.
    for parent, bad_token in (
        ("tenants/globex", first.next_page_token),
        ("tenants/acme", first.next_page_token[:-3]),
        ("tenants/acme", "not-a-token"),
    ):
        with pytest.raises(ValidationError):
            await server.call(
                server.stub.ListUsers,
                pb.ListUsersRequest(parent=parent, page_token=bad_token),
            )
    with pytest.raises(ValidationError):
        await server.call(
            server.stub.ListUsers, pb.ListUsersRequest(parent="tenants/acme", page_size=-1)
        )

    tenants = await server.call(server.stub.ListTenants, pb.ListTenantsRequest(page_size=1))
    assert [tenant.name for tenant in tenants.tenants] == ["tenants/acme"]
    rest = await server.call(
        server.stub.ListTenants, pb.ListTenantsRequest(page_token=tenants.next_page_token)
    )
    assert [tenant.name for tenant in rest.tenants] == ["tenants/globex", "tenants/platform"]
    assert rest.next_page_token == ""
    # A tenant's principal sees its own tenant only.
    own = await server.call(server.stub.ListTenants, pb.ListTenantsRequest(), alice)
    assert [tenant.name for tenant in own.tenants] == ["tenants/acme"]


async def test_role_assignments_and_grants_are_listed_changed_and_audited(
    server: Server,
) -> None:
    alice = await _tenant_with_admin(server, "acme")
    for user_id in ("bob", "carol"):
        await server.call(
            server.stub.CreateUser,
            pb.CreateUserRequest(parent="tenants/acme", user_id=user_id, password=PASSWORD),
            alice,
        )
    with structlog.testing.capture_logs() as events:
        for user_id, role in (("bob", "member"), ("carol", "viewer"), ("bob", "viewer")):
            assigned = await server.call(
                server.stub.AssignRole,
                pb.AssignRoleRequest(
                    principal=f"tenants/acme/users/{user_id}", role=f"tenants/acme/roles/{role}"
                ),
                alice,
            )
            assert assigned.role_assignment.role == f"tenants/acme/roles/{role}"
        # Assigning a held role again succeeds.
        await server.call(
            server.stub.AssignRole,
            pb.AssignRoleRequest(
                principal="tenants/acme/users/bob", role="tenants/acme/roles/member"
            ),
            alice,
        )
        granted = await server.call(
            server.stub.GrantRolePermission,
            pb.GrantRolePermissionRequest(
                role="tenants/acme/roles/member", permission="invoices:write"
            ),
            alice,
        )
    assert granted.role_permission.permission == "invoices:write"
    audits = [event for event in events if event["event"].startswith("auth.")]
    assert [event["event"] for event in audits] == [
        "auth.role_assigned",
        "auth.role_assigned",
        "auth.role_assigned",
        "auth.role_assigned",
        "auth.permission_granted",
    ]
    assert all(event["tenant"] == "tenants/acme" for event in audits)
    assert all(event["subject"] == "tenants/acme/users/alice" for event in audits)

    with pytest.raises(NotFoundError):
        await server.call(
            server.stub.AssignRole,
            pb.AssignRoleRequest(
                principal="tenants/acme/users/ghost", role="tenants/acme/roles/member"
            ),
            alice,
        )
    with pytest.raises(ValidationError) as invalid:
        await server.call(
            server.stub.GrantRolePermission,
            pb.GrantRolePermissionRequest(role="tenants/acme/roles/member", permission="invoices"),
            alice,
        )
    assert invalid.value.reason == "INVALID_PERMISSION"

    everything: list[tuple[str, str]] = []
    token = ""
    while True:
        page = await server.call(
            server.stub.ListRoleAssignments,
            pb.ListRoleAssignmentsRequest(parent="tenants/acme", page_size=1, page_token=token),
            alice,
        )
        everything += [(item.principal, item.role) for item in page.role_assignments]
        token = page.next_page_token
        if not token:
            break
    assert everything == [
        ("tenants/acme/users/alice", "tenants/acme/roles/admin"),
        ("tenants/acme/users/bob", "tenants/acme/roles/member"),
        ("tenants/acme/users/bob", "tenants/acme/roles/viewer"),
        ("tenants/acme/users/carol", "tenants/acme/roles/viewer"),
    ]
    bobs = await server.call(
        server.stub.ListRoleAssignments,
        pb.ListRoleAssignmentsRequest(parent="tenants/acme", principal="tenants/acme/users/bob"),
        alice,
    )
    assert [item.role for item in bobs.role_assignments] == [
        "tenants/acme/roles/member",
        "tenants/acme/roles/viewer",
    ]
    viewers = await server.call(
        server.stub.ListRoleAssignments,
        pb.ListRoleAssignmentsRequest(parent="tenants/acme", role="tenants/acme/roles/viewer"),
        alice,
    )
    assert [item.principal for item in viewers.role_assignments] == [
        "tenants/acme/users/bob",
        "tenants/acme/users/carol",
    ]
    # The platform role is listed under the principal's own tenant.
    platform = await server.call(
        server.stub.ListRoleAssignments, pb.ListRoleAssignmentsRequest(parent="tenants/platform")
    )
    assert [(item.principal, item.role) for item in platform.role_assignments] == [
        (ROOT, "roles/platform-admin")
    ]

    member_permissions = await server.call(
        server.stub.ListRolePermissions,
        pb.ListRolePermissionsRequest(role="tenants/acme/roles/member"),
        alice,
    )
    assert [item.permission for item in member_permissions.role_permissions] == ["invoices:write"]
    with structlog.testing.capture_logs() as events:
        await server.call(
            server.stub.RevokeRolePermission,
            pb.RevokeRolePermissionRequest(
                role="tenants/acme/roles/member", permission="invoices:write"
            ),
            alice,
        )
        await server.call(
            server.stub.UnassignRole,
            pb.UnassignRoleRequest(
                principal="tenants/acme/users/bob", role="tenants/acme/roles/viewer"
            ),
            alice,
        )
        # Taking what is not held succeeds.
        await server.call(
            server.stub.UnassignRole,
            pb.UnassignRoleRequest(
                principal="tenants/acme/users/bob", role="tenants/acme/roles/viewer"
            ),
            alice,
        )
    assert [event["event"] for event in events if event["event"].startswith("auth.")] == [
        "auth.permission_revoked",
        "auth.role_unassigned",
        "auth.role_unassigned",
    ]
    member_permissions = await server.call(
        server.stub.ListRolePermissions,
        pb.ListRolePermissionsRequest(role="tenants/acme/roles/member"),
        alice,
    )
    assert list(member_permissions.role_permissions) == []
    bobs = await server.call(
        server.stub.ListRoleAssignments,
        pb.ListRoleAssignmentsRequest(parent="tenants/acme", principal="tenants/acme/users/bob"),
        alice,
    )
    assert [item.role for item in bobs.role_assignments] == ["tenants/acme/roles/member"]


async def test_assignments_and_grants_carry_the_time_they_were_first_made(
    server: Server,
) -> None:
    alice = await _tenant_with_admin(server, "acme")
    viewer = pb.AssignRoleRequest(
        principal="tenants/acme/users/alice", role="tenants/acme/roles/viewer"
    )
    before = datetime.now(UTC).replace(microsecond=0)
    assigned = await server.call(server.stub.AssignRole, viewer, alice)
    granted = await server.call(
        server.stub.GrantRolePermission,
        pb.GrantRolePermissionRequest(role="tenants/acme/roles/viewer", permission="a:read"),
        alice,
    )
    # Assigning and granting again keeps the first time.
    again = await server.call(server.stub.AssignRole, viewer, alice)
    granted_again = await server.call(
        server.stub.GrantRolePermission,
        pb.GrantRolePermissionRequest(role="tenants/acme/roles/viewer", permission="a:read"),
        alice,
    )
    listed = await server.call(
        server.stub.ListRoleAssignments,
        pb.ListRoleAssignmentsRequest(parent="tenants/acme", principal="tenants/acme/users/alice"),
        alice,
    )
    permissions = await server.call(
        server.stub.ListRolePermissions,
        pb.ListRolePermissionsRequest(role="tenants/acme/roles/viewer"),
        alice,
    )

    assign_time = assigned.role_assignment.create_time
    grant_time = granted.role_permission.create_time
    assert assigned.role_assignment.HasField("create_time")
    assert assign_time.ToDatetime(UTC) >= before
    assert again.role_assignment.create_time == assign_time
    assert granted_again.role_permission.create_time == grant_time
    times = {item.role: item.create_time for item in listed.role_assignments}
    assert times["tenants/acme/roles/viewer"] == assign_time
    assert all(item.HasField("create_time") for item in listed.role_assignments)
    grant_times = {item.permission: item.create_time for item in permissions.role_permissions}
    assert grant_times["a:read"] == grant_time


async def test_a_tenant_role_grant_takes_effect_on_admin_rights_at_once(server: Server) -> None:
    alice = await _tenant_with_admin(server, "acme")
    await server.call(
        server.stub.CreateUser,
        pb.CreateUserRequest(parent="tenants/acme", user_id="bob", password=PASSWORD),
        alice,
    )
    await server.call(
        server.stub.AssignRole,
        pb.AssignRoleRequest(principal="tenants/acme/users/bob", role="tenants/acme/roles/member"),
        alice,
    )
    bob = await server.access_token("tenants/acme", "bob")
    request = pb.CreateUserRequest(parent="tenants/acme", user_id="carol", password=PASSWORD)
    with pytest.raises(PermissionDeniedError):
        await server.call(server.stub.CreateUser, request, bob)
    await server.call(
        server.stub.GrantRolePermission,
        pb.GrantRolePermissionRequest(role="tenants/acme/roles/member", permission="users:create"),
        alice,
    )
    created = await server.call(server.stub.CreateUser, request, bob)
    assert created.user.name == "tenants/acme/users/carol"


async def test_bootstrap_refuses_a_weak_password_and_a_second_admin_of_the_same_name(
    server: Server,
) -> None:
    with pytest.raises(ValidationError):
        await bootstrap_platform_admin(
            server.service.database,
            PasswordHasher(),
            tenant="tenants/platform",
            username="second",
            password="weak",
        )
    with pytest.raises(AlreadyExistsError):
        await bootstrap_platform_admin(
            server.service.database,
            PasswordHasher(),
            tenant="tenants/platform",
            username="root",
            password=ROOT_PASSWORD,
        )
