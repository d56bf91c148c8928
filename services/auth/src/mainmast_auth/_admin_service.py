"""The admin RPCs' logic: tenants, users, service accounts, role assignments and grants.

`AdminService` speaks store rows, dataclasses and mainmast errors, not protobuf. Every
method takes the caller (the `sub` of its token) and authorises it first, by a permission
in the tenant the call touches (`users:create` in `tenants/acme`, say), through this
replica's synced `Authorizer`. That decision is made from resource names alone, before
anything is read from the store, so a caller of another tenant gets PERMISSION_DENIED
whether or not the resource exists. Platform acts (creating and disabling tenants,
listing every tenant, changing `roles/platform-admin`) need the permission through a
platform role.

Policy changes are committed with the version bump that other replicas poll for, then
applied to this replica's authorizer; likewise a disabled tenant or principal is applied
to this replica's access state once committed, so its tokens stop working here at once.
Each change is logged as an audit event with the tenant it concerns and the acting
subject; passwords, hashes and client secrets never are.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.db import DatabasePool
from mainmast.errors import FieldViolation, PermissionDeniedError, ValidationError
from mainmast.logging import get_logger

from . import _store_directory as directory
from ._access_state_sync import AccessStateSync
from ._admin_pages import decode_page_token, encode_page_token, page_size
from ._authorizer import Authorizer
from ._models import PolicyLineRow, ServiceAccountRow, TenantRow, UserRow
from ._passwords import PasswordHasher, PasswordRules
from ._policy_model import PolicyChange, PolicyChangeKind, Section
from ._policy_sync import PolicySync
from ._refresh_tokens import FamilyRevokeReason
from ._request_records import RequestKey, RequestRecords
from ._resource_names import (
    PLATFORM_ADMIN_ROLE,
    PLATFORM_DOMAIN,
    PrincipalKind,
    RoleName,
    invalid_name,
    principal_kind,
    tenant_name,
    tenant_of_principal,
)
from ._store_policies import line_create_time, save_policy_changes
from ._store_tokens import revoke_refresh_families

T = TypeVar("T")

_TENANT_ID: Final = re.compile(r"[a-z][a-z0-9-]{1,62}")
_USER_ID: Final = re.compile(r"[a-z0-9._-]{1,63}")
_SERVICE_ACCOUNT_ID: Final = _TENANT_ID
_CLIENT_SECRET_BYTES: Final = 32
_DISPLAY_NAME_CHARS: Final = 255
_DESCRIPTION_CHARS: Final = 1024


@dataclass(frozen=True, slots=True)
class ListPage(Generic[T]):
    """One page of an admin listing."""

    items: list[T]
    """The items of this page."""
    next_page_token: str
    """The token of the next page; empty on the last page."""


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    """`principal` holds `role`."""

    principal: str
    """Resource name of the user or service account."""
    role: str
    """Resource name of the role."""
    create_time: datetime | None = None
    """When the role was first assigned; None for assignments stored before times were."""


@dataclass(frozen=True, slots=True)
class RolePermission:
    """`role` is granted `permission`."""

    role: str
    """Resource name of the role."""
    permission: str
    """"resource:action"."""
    create_time: datetime | None = None
    """When the permission was first granted; None for grants stored before times were."""


@dataclass(frozen=True, slots=True)
class CreatedServiceAccount:
    """A new service account and its client secret, shown this once."""

    account: ServiceAccountRow
    """The stored account (holding only the secret's hash)."""
    client_secret: str
    """The client secret; empty when a retry of the creating call answers (it is shown once)."""

    def __repr__(self) -> str:
        return f"CreatedServiceAccount(account={self.account.name!r}, client_secret=...)"


def _permission_missing(permission: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"The caller lacks the permission {permission}.",
        reason=AuthErrorReason.PERMISSION_MISSING.value,
        domain=AUTH_ERROR_DOMAIN,
        metadata={"permission": permission},
    )


def _checked_id(value: str, pattern: re.Pattern[str], field: str, rule: str) -> str:
    if pattern.fullmatch(value) is None:
        description = f"The {field} must be {rule}."
        raise ValidationError(
            description,
            field_violations=[FieldViolation(field, description, reason="INVALID_RESOURCE_ID")],
            reason=AuthErrorReason.INVALID_RESOURCE_ID.value,
            domain=AUTH_ERROR_DOMAIN,
            metadata={"field": field},
        )
    return value


def _checked_text(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        description = f"The {field} has at most {limit} characters."
        raise ValidationError(description, field_violations=[FieldViolation(field, description)])
    return value


def _principal_of_kind(value: str, kind: PrincipalKind, field: str) -> str:
    """The tenant of `value`, which must name a principal of `kind`."""
    tenant = tenant_of_principal(value, field=field)
    if principal_kind(value) is not kind:
        raise invalid_name(field, f"tenants/acme/{kind.value}/...")
    return tenant


def _grant_change(role: str, permission: str) -> PolicyChange:
    # A scratch authorizer validates the names and builds the line as the real one would.
    return Authorizer().grant_permission(role, permission)[0]


def _assignment_change(principal: str, role: str) -> PolicyChange:
    return Authorizer().assign_role(principal, role)[0]


def _removal(change: PolicyChange) -> PolicyChange:
    return PolicyChange(PolicyChangeKind.REMOVE, change.line)


class AdminService:
    """Tenants, users, service accounts and roles, administered by authorised callers."""

    __slots__ = ("_access", "_database", "_hasher", "_log", "_requests", "_rules", "_sync")

    def __init__(
        self,
        database: DatabasePool,
        sync: PolicySync,
        hasher: PasswordHasher,
        *,
        access: AccessStateSync | None = None,
        rules: PasswordRules | None = None,
    ) -> None:
        self._database = database
        self._requests = RequestRecords(database)
        self._sync = sync
        self._access = access
        self._hasher = hasher
        self._rules = rules or PasswordRules()
        self._log = get_logger("mainmast_auth.admin")

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def _disabled(self, name: str) -> None:
        # Without an access state (the operator's commands) other replicas poll it up.
        if self._access is not None:
            self._access.disabled(name)

    # Authorisation

    def _require(self, caller: str, tenant: str, permission: str) -> None:
        """PermissionDeniedError unless `caller` holds `permission` in `tenant` (which a
        principal of another tenant never does, unless it is a platform admin)."""
        if not self._sync.authorizer.check(caller, tenant, permission):
            raise _permission_missing(permission)

    def _require_platform(self, caller: str, permission: str) -> None:
        if not self._sync.authorizer.check_platform(caller, permission):
            raise _permission_missing(permission)

    def _require_for_role(self, caller: str, role: RoleName, permission: str) -> None:
        if role.is_platform_role:
            self._require_platform(caller, permission)
        else:
            self._require(caller, role.domain, permission)

    async def _commit_policy(
        self, changes: list[PolicyChange], *, tenant: str | None = None
    ) -> list[datetime | None]:
        """Persist `changes` (after checking `tenant` exists), then apply them here; the
        stored create_time of each added line (None for a removal)."""
        async with self._database.session() as session:
            if tenant is not None:
                await directory.get_tenant(session, tenant)
            version = await self._sync.commit_changes(session, changes)
            times = [
                await line_create_time(session, change.line)
                if change.kind is PolicyChangeKind.ADD
                else None
                for change in changes
            ]
        self._sync.applied(changes, version)
        return times

    # Tenants

    async def create_tenant(
        self, caller: str, tenant_id: str, *, display_name: str = "", request_id: str = ""
    ) -> TenantRow:
        """Create `tenants/{tenant_id}` with the roles owner, admin, member and viewer.

        A retry with the first call's `request_id` answers the tenant it created."""
        _checked_id(
            tenant_id,
            _TENANT_ID,
            "tenant_id",
            "2 to 63 lowercase letters, digits and hyphens, starting with a letter",
        )
        _checked_text(display_name, "tenant.display_name", _DISPLAY_NAME_CHARS)
        key = RequestKey.of(
            caller, request_id, "CreateTenant", tenant_id=tenant_id, display_name=display_name
        )
        self._require_platform(caller, "tenants:create")
        tenant = f"tenants/{tenant_id}"
        changes = Authorizer().add_tenant(tenant)

        async def create(session: AsyncSession) -> tuple[tuple[TenantRow, int | None], str]:
            row = await directory.create_tenant(
                session, tenant, display_name=display_name, now=self._now()
            )
            return (row, await self._sync.commit_changes(session, changes)), row.name

        async def replay(name: str) -> tuple[TenantRow, int | None]:
            async with self._database.session() as session:
                return await directory.get_tenant(session, name), None

        ran = await self._requests.run(key, create, replay)
        row, version = ran.value
        if version is not None:
            self._sync.applied(changes, version)
            self._log.info("auth.tenant_created", tenant=tenant, subject=caller)
        return row

    async def get_tenant(self, caller: str, name: str) -> TenantRow:
        """The tenant; needs `tenants:read` in it."""
        tenant_name(name, field="name")
        self._require(caller, name, "tenants:read")
        async with self._database.session() as session:
            return await directory.get_tenant(session, name)

    async def list_tenants(
        self, caller: str, *, requested_page_size: int, page_token: str
    ) -> ListPage[TenantRow]:
        """Every tenant for platform callers (`tenants:read` on the platform); otherwise
        the caller's own tenant, with `tenants:read` in it."""
        size = page_size(requested_page_size)
        if self._sync.authorizer.check_platform(caller, "tenants:read"):
            after = decode_page_token(page_token, ["platform"])
            async with self._database.session() as session:
                page = await directory.list_tenants(
                    session, page_size=size, after=None if after is None else after[0]
                )
            token = (
                ""
                if page.next_after is None
                else encode_page_token(["platform"], [page.next_after])
            )
            return ListPage(page.items, token)
        own = tenant_of_principal(caller, field="caller")
        self._require(caller, own, "tenants:read")
        # One tenant fits on any page: a token can only come from a platform listing.
        decode_page_token(page_token, ["own", own])
        async with self._database.session() as session:
            row = await directory.get_tenant(session, own)
        return ListPage([row], "")

    async def disable_tenant(self, caller: str, name: str) -> TenantRow:
        """Disable the tenant and revoke its principals' refresh tokens; platform only."""
        tenant_name(name, field="name")
        self._require_platform(caller, "tenants:disable")
        now = self._now()
        async with self._database.session() as session:
            row = await directory.disable_tenant(session, name, now=now)
            await revoke_refresh_families(
                session, tenant=name, now=now, reason=FamilyRevokeReason.PRINCIPAL_DISABLED
            )
        self._disabled(name)
        self._log.info("auth.tenant_disabled", tenant=name, subject=caller)
        return row

    # Users

    async def get_user(self, caller: str, name: str) -> UserRow:
        """The user; needs `users:read` in its tenant."""
        tenant = _principal_of_kind(name, PrincipalKind.USER, "name")
        self._require(caller, tenant, "users:read")
        async with self._database.session() as session:
            return await directory.get_user(session, name)

    async def list_users(
        self, caller: str, parent: str, *, requested_page_size: int, page_token: str
    ) -> ListPage[UserRow]:
        """The tenant's users by name; needs `users:read` in it."""
        tenant_name(parent, field="parent")
        size = page_size(requested_page_size)
        self._require(caller, parent, "users:read")
        after = decode_page_token(page_token, [parent])
        async with self._database.session() as session:
            page = await directory.list_users(
                session, parent, page_size=size, after=None if after is None else after[0]
            )
        token = "" if page.next_after is None else encode_page_token([parent], [page.next_after])
        return ListPage(page.items, token)

    async def create_user(
        self,
        caller: str,
        parent: str,
        user_id: str,
        *,
        password: str,
        display_name: str = "",
        email: str = "",
        request_id: str = "",
    ) -> UserRow:
        """Create a user with a password that satisfies the rules; needs `users:create`.

        A retry with the first call's `request_id` answers the user it created."""
        tenant_name(parent, field="parent")
        _checked_id(
            user_id,
            _USER_ID,
            "user_id",
            "1 to 63 lowercase letters, digits, '.', '_' and '-'",
        )
        _checked_text(display_name, "user.display_name", _DISPLAY_NAME_CHARS)
        _checked_text(email, "user.email", _DISPLAY_NAME_CHARS)
        key = RequestKey.of(
            caller,
            request_id,
            "CreateUser",
            parent=parent,
            user_id=user_id,
            display_name=display_name,
            email=email,
        )
        self._require(caller, parent, "users:create")
        self._rules.check(password, username=user_id)
        password_hash = await self._hasher.hash_async(password)

        async def create(session: AsyncSession) -> tuple[UserRow, str]:
            row = await directory.create_user(
                session,
                parent,
                user_id,
                password_hash=password_hash,
                display_name=display_name,
                email=email,
                now=self._now(),
            )
            return row, row.name

        ran = await self._requests.run(key, create, self._current_user)
        if not ran.replayed:
            self._log.info("auth.user_created", tenant=parent, subject=caller, user=ran.value.name)
        return ran.value

    async def _current_user(self, name: str) -> UserRow:
        async with self._database.session() as session:
            return await directory.get_user(session, name)

    async def disable_user(self, caller: str, name: str) -> UserRow:
        """Disable the user and revoke its refresh tokens; needs `users:disable`."""
        tenant = _principal_of_kind(name, PrincipalKind.USER, "name")
        self._require(caller, tenant, "users:disable")
        now = self._now()
        async with self._database.session() as session:
            row = await directory.disable_user(session, name, now=now)
            await revoke_refresh_families(
                session, subject=name, now=now, reason=FamilyRevokeReason.PRINCIPAL_DISABLED
            )
        self._disabled(name)
        self._log.info("auth.user_disabled", tenant=tenant, subject=caller, user=name)
        return row

    async def set_user_password(
        self, caller: str, name: str, password: str, *, request_id: str = ""
    ) -> UserRow:
        """Replace the password and revoke the user's refresh tokens; needs `users:update`.

        A retry with the first call's `request_id` changes nothing again (refresh tokens
        issued since stay valid) and answers the user."""
        tenant = _principal_of_kind(name, PrincipalKind.USER, "name")
        key = RequestKey.of(caller, request_id, "SetUserPassword", name=name)
        self._require(caller, tenant, "users:update")
        self._rules.check(password, username=name.rpartition("/")[2])
        password_hash = await self._hasher.hash_async(password)
        now = self._now()

        async def change(session: AsyncSession) -> tuple[UserRow, str]:
            row = await directory.set_user_password(
                session, name, password_hash=password_hash, now=now
            )
            await revoke_refresh_families(
                session, subject=name, now=now, reason=FamilyRevokeReason.PASSWORD_CHANGED
            )
            return row, row.name

        ran = await self._requests.run(key, change, self._current_user)
        if not ran.replayed:
            self._log.info("auth.password_changed", tenant=tenant, subject=caller, user=name)
        return ran.value

    # Service accounts

    async def get_service_account(self, caller: str, name: str) -> ServiceAccountRow:
        """The service account; needs `service-accounts:read` in its tenant."""
        tenant = _principal_of_kind(name, PrincipalKind.SERVICE_ACCOUNT, "name")
        self._require(caller, tenant, "service-accounts:read")
        async with self._database.session() as session:
            return await directory.get_service_account(session, name)

    async def list_service_accounts(
        self, caller: str, parent: str, *, requested_page_size: int, page_token: str
    ) -> ListPage[ServiceAccountRow]:
        """The tenant's service accounts by name; needs `service-accounts:read` in it."""
        tenant_name(parent, field="parent")
        size = page_size(requested_page_size)
        self._require(caller, parent, "service-accounts:read")
        after = decode_page_token(page_token, [parent])
        async with self._database.session() as session:
            page = await directory.list_service_accounts(
                session, parent, page_size=size, after=None if after is None else after[0]
            )
        token = "" if page.next_after is None else encode_page_token([parent], [page.next_after])
        return ListPage(page.items, token)

    async def create_service_account(
        self,
        caller: str,
        parent: str,
        service_account_id: str,
        *,
        display_name: str = "",
        description: str = "",
        request_id: str = "",
    ) -> CreatedServiceAccount:
        """Create a service account with a random client secret, stored as an argon2id hash;
        needs `service-accounts:create`.

        A retry with the first call's `request_id` answers the account it created without
        a client secret (empty): the secret is shown once and stored only as a hash."""
        tenant_name(parent, field="parent")
        _checked_id(
            service_account_id,
            _SERVICE_ACCOUNT_ID,
            "service_account_id",
            "2 to 63 lowercase letters, digits and hyphens, starting with a letter",
        )
        _checked_text(display_name, "service_account.display_name", _DISPLAY_NAME_CHARS)
        _checked_text(description, "service_account.description", _DESCRIPTION_CHARS)
        key = RequestKey.of(
            caller,
            request_id,
            "CreateServiceAccount",
            parent=parent,
            service_account_id=service_account_id,
            display_name=display_name,
            description=description,
        )
        self._require(caller, parent, "service-accounts:create")
        secret = secrets.token_urlsafe(_CLIENT_SECRET_BYTES)
        secret_hash = await self._hasher.hash_async(secret)

        async def create(session: AsyncSession) -> tuple[CreatedServiceAccount, str]:
            row = await directory.create_service_account(
                session,
                parent,
                service_account_id,
                secret_hash=secret_hash,
                display_name=display_name,
                description=description,
                now=self._now(),
            )
            return CreatedServiceAccount(row, secret), row.name

        async def replay(name: str) -> CreatedServiceAccount:
            async with self._database.session() as session:
                row = await directory.get_service_account(session, name)
            return CreatedServiceAccount(row, "")

        ran = await self._requests.run(key, create, replay)
        if not ran.replayed:
            self._log.info(
                "auth.service_account_created",
                tenant=parent,
                subject=caller,
                service_account=ran.value.account.name,
            )
        return ran.value

    async def disable_service_account(self, caller: str, name: str) -> ServiceAccountRow:
        """Disable the service account; needs `service-accounts:disable`."""
        tenant = _principal_of_kind(name, PrincipalKind.SERVICE_ACCOUNT, "name")
        self._require(caller, tenant, "service-accounts:disable")
        async with self._database.session() as session:
            row = await directory.disable_service_account(session, name, now=self._now())
        self._disabled(name)
        self._log.info(
            "auth.service_account_disabled", tenant=tenant, subject=caller, service_account=name
        )
        return row

    # Roles

    async def assign_role(self, caller: str, principal: str, role: str) -> RoleAssignment:
        """Give `principal` the role (idempotent); needs `roles:assign` in the role's tenant,
        on the platform for `roles/platform-admin`."""
        tenant = tenant_of_principal(principal)
        role_name = RoleName.parse(role)
        change = _assignment_change(principal, role)
        self._require_for_role(caller, role_name, "roles:assign")
        async with self._database.session() as session:
            await _get_principal(session, principal)
            version = await self._sync.commit_changes(session, [change])
            create_time = await line_create_time(session, change.line)
        self._sync.applied([change], version)
        self._log.info(
            "auth.role_assigned", tenant=tenant, subject=caller, principal=principal, role=role
        )
        return RoleAssignment(principal, role, create_time)

    async def unassign_role(self, caller: str, principal: str, role: str) -> None:
        """Take the role from `principal` (idempotent); needs `roles:assign`."""
        tenant = tenant_of_principal(principal)
        role_name = RoleName.parse(role)
        change = _removal(_assignment_change(principal, role))
        self._require_for_role(caller, role_name, "roles:assign")
        await self._commit_policy([change])
        self._log.info(
            "auth.role_unassigned", tenant=tenant, subject=caller, principal=principal, role=role
        )

    async def grant_role_permission(
        self, caller: str, role: str, permission: str
    ) -> RolePermission:
        """Grant `permission` to the role (idempotent); needs `roles:update` in its tenant."""
        role_name = RoleName.parse(role)
        change = _grant_change(role, permission)
        self._require_for_role(caller, role_name, "roles:update")
        (create_time,) = await self._commit_policy(
            [change], tenant=None if role_name.is_platform_role else role_name.domain
        )
        self._log.info(
            "auth.permission_granted",
            tenant=role_name.domain,
            subject=caller,
            role=role,
            permission=permission,
        )
        return RolePermission(role, permission, create_time)

    async def revoke_role_permission(self, caller: str, role: str, permission: str) -> None:
        """Revoke `permission` from the role (idempotent); needs `roles:update`."""
        role_name = RoleName.parse(role)
        change = _removal(_grant_change(role, permission))
        self._require_for_role(caller, role_name, "roles:update")
        await self._commit_policy([change])
        self._log.info(
            "auth.permission_revoked",
            tenant=role_name.domain,
            subject=caller,
            role=role,
            permission=permission,
        )

    async def list_role_assignments(
        self,
        caller: str,
        parent: str,
        *,
        principal: str = "",
        role: str = "",
        requested_page_size: int,
        page_token: str,
    ) -> ListPage[RoleAssignment]:
        """The role assignments of the tenant's principals (their platform role included),
        by principal then role; needs `roles:read` in the tenant."""
        tenant_name(parent, field="parent")
        if principal and tenant_of_principal(principal) != parent:
            raise invalid_name("principal", f"{parent}/users/...")
        if role:
            RoleName.parse(role)
        size = page_size(requested_page_size)
        self._require(caller, parent, "roles:read")
        filters = [parent, principal, role]
        after = decode_page_token(page_token, filters, parts=2)
        rows = PolicyLineRow
        statement = (
            select(rows.v0, rows.v1, rows.create_time)
            .where(
                rows.ptype == Section.ASSIGNMENT.value,
                or_(rows.v2 == parent, rows.v2 == PLATFORM_DOMAIN),
                or_(
                    rows.v0.startswith(f"{parent}/users/", autoescape=True),
                    rows.v0.startswith(f"{parent}/serviceAccounts/", autoescape=True),
                ),
            )
            .order_by(rows.v0, rows.v1)
            .limit(size + 1)
        )
        if principal:
            statement = statement.where(rows.v0 == principal)
        if role:
            statement = statement.where(rows.v1 == role)
        if after is not None:
            statement = statement.where(
                or_(rows.v0 > after[0], and_(rows.v0 == after[0], rows.v1 > after[1]))
            )
        async with self._database.session() as session:
            found = [
                RoleAssignment(str(member), str(held), create_time)
                for member, held, create_time in await session.execute(statement)
            ]
        items = found[:size]
        token = ""
        if len(found) > size:
            token = encode_page_token(filters, [items[-1].principal, items[-1].role])
        return ListPage(items, token)

    async def list_role_permissions(
        self, caller: str, role: str, *, requested_page_size: int, page_token: str
    ) -> ListPage[RolePermission]:
        """The permissions granted to the role directly, by resource then action; needs
        `roles:read` in its tenant (on the platform for `roles/platform-admin`)."""
        role_name = RoleName.parse(role)
        size = page_size(requested_page_size)
        self._require_for_role(caller, role_name, "roles:read")
        filters = [role]
        after = decode_page_token(page_token, filters, parts=2)
        rows = PolicyLineRow
        statement = (
            select(rows.v2, rows.v3, rows.create_time)
            .where(
                rows.ptype == Section.GRANT.value,
                rows.v0 == role_name.name,
                rows.v1 == role_name.domain,
            )
            .order_by(rows.v2, rows.v3)
            .limit(size + 1)
        )
        if after is not None:
            statement = statement.where(
                or_(rows.v2 > after[0], and_(rows.v2 == after[0], rows.v3 > after[1]))
            )
        async with self._database.session() as session:
            found = [
                (str(resource), str(action), create_time)
                for resource, action, create_time in await session.execute(statement)
            ]
        items = [
            RolePermission(role, f"{resource}:{action}", create_time)
            for resource, action, create_time in found[:size]
        ]
        token = ""
        if len(found) > size:
            resource, action, _ = found[size - 1]
            token = encode_page_token(filters, [resource, action])
        return ListPage(items, token)


async def _get_principal(session: AsyncSession, principal: str) -> UserRow | ServiceAccountRow:
    if principal_kind(principal) is PrincipalKind.USER:
        return await directory.get_user(session, principal)
    return await directory.get_service_account(session, principal)


async def bootstrap_platform_admin(
    database: DatabasePool,
    hasher: PasswordHasher,
    *,
    tenant: str,
    username: str,
    password: str,
    rules: PasswordRules | None = None,
) -> str:
    """Create the first platform admin: `tenant` (unless it exists) with its default roles,
    the platform role's grants, and user `username` holding `roles/platform-admin`; the
    user's resource name.

    For a fresh install (the CLI's bootstrap) and for tests; it needs no caller, so it is
    never reachable over gRPC. Running replicas pick the new policy up by polling.
    AlreadyExistsError if the user exists.
    """
    tenant_name(tenant)
    _checked_id(username, _USER_ID, "username", "1 to 63 lowercase letters, digits, '.', '_', '-'")
    (rules or PasswordRules()).check(password, username=username)
    password_hash = await hasher.hash_async(password)
    user = f"{tenant}/users/{username}"
    now = datetime.now(UTC)
    scratch = Authorizer()
    changes = (
        scratch.add_tenant(tenant)
        + scratch.add_platform_role()
        + scratch.assign_role(user, PLATFORM_ADMIN_ROLE)
    )
    async with database.session() as session:
        if await directory.find_tenant(session, tenant) is None:
            await directory.create_tenant(session, tenant, now=now)
        await directory.create_user(session, tenant, username, password_hash=password_hash, now=now)
        await save_policy_changes(session, changes)
    get_logger("mainmast_auth.admin").info(
        "auth.platform_admin_bootstrapped", tenant=tenant, subject=user
    )
    return user
