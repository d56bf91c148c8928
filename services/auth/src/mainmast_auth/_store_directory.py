"""The directory in the database: tenants, users and service accounts.

Functions take an `AsyncSession` whose transaction the caller owns (`DatabasePool.session()`)
and resource names as the contract spells them (`tenants/acme/users/alice`); malformed
names raise ValidationError, missing rows NotFoundError, duplicates AlreadyExistsError.
The `find_*` functions return None instead of raising: login answers an unknown user
exactly as a wrong password, so "not found" must not become an error with its own shape.
Disabling bumps the access-state version, so every replica stops accepting the tokens.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.errors import NotFoundError

from ._models import ServiceAccountRow, State, TenantRow, UserRow
from ._resource_names import PrincipalKind, invalid_name, principal_kind, tenant_name
from ._store_access_state import bump_access_state_version
from ._store_common import Page, checked_page_size, flush_new, page_of

_TENANT: Final = "Tenant"
_USER: Final = "User"
_SERVICE_ACCOUNT: Final = "ServiceAccount"


def _tenant_id(tenant: str) -> str:
    return tenant_name(tenant).removeprefix("tenants/")


def _principal_parts(name: str, kind: PrincipalKind, field: str) -> tuple[str, str]:
    """(tenant id, user or account id) of a principal name of `kind`."""
    if principal_kind(name) is not kind:
        raise invalid_name(field, f"tenants/acme/{kind.value}/...")
    _, tenant_id, _, principal_id = name.split("/")
    return tenant_id, principal_id


# Tenants


async def create_tenant(
    session: AsyncSession, tenant: str, *, display_name: str = "", now: datetime
) -> TenantRow:
    """Add tenant `tenants/{id}`, active; AlreadyExistsError if it exists."""
    row = TenantRow(
        tenant_id=_tenant_id(tenant),
        display_name=display_name,
        state=State.ACTIVE.value,
        create_time=now,
        update_time=now,
    )
    session.add(row)
    await flush_new(session, _TENANT, tenant)
    return row


async def find_tenant(
    session: AsyncSession, tenant: str, *, lock: bool = False
) -> TenantRow | None:
    """The tenant, or None; `lock` holds its row until the transaction ends (PostgreSQL)."""
    statement = select(TenantRow).where(TenantRow.tenant_id == _tenant_id(tenant))
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_tenant(session: AsyncSession, tenant: str, *, lock: bool = False) -> TenantRow:
    """The tenant; NotFoundError if there is none."""
    row = await find_tenant(session, tenant, lock=lock)
    if row is None:
        raise NotFoundError(_TENANT, tenant)
    return row


async def list_tenants(
    session: AsyncSession, *, page_size: int, after: str | None = None
) -> Page[TenantRow]:
    """Tenants in name order, `page_size` at a time, after the tenant name `after`."""
    size = checked_page_size(page_size)
    statement = select(TenantRow).order_by(TenantRow.tenant_id).limit(size + 1)
    if after is not None:
        statement = statement.where(TenantRow.tenant_id > _tenant_id(after))
    rows = list((await session.execute(statement)).scalars())
    return page_of(rows, size, rows[size - 1].name if len(rows) > size else None)


async def disable_tenant(session: AsyncSession, tenant: str, *, now: datetime) -> TenantRow:
    """Mark the tenant disabled (unchanged if it is already); NotFoundError if there is none."""
    row = await get_tenant(session, tenant, lock=True)
    if row.state != State.DISABLED.value:
        row.state = State.DISABLED.value
        row.update_time = now
        await bump_access_state_version(session)
    return row


# Users


async def create_user(
    session: AsyncSession,
    tenant: str,
    user_id: str,
    *,
    password_hash: str | None,
    display_name: str = "",
    email: str = "",
    now: datetime,
) -> UserRow:
    """Add user `{tenant}/users/{user_id}` with an argon2id hash (None: no password login yet).

    NotFoundError if the tenant does not exist, AlreadyExistsError if the user does.
    """
    name = f"{tenant_name(tenant)}/users/{user_id}"
    tenant_id, username = _principal_parts(name, PrincipalKind.USER, "user_id")
    await get_tenant(session, tenant)
    row = UserRow(
        uid=str(uuid.uuid4()),
        tenant_id=tenant_id,
        username=username,
        display_name=display_name,
        email=email,
        password_hash=password_hash,
        state=State.ACTIVE.value,
        create_time=now,
        update_time=now,
    )
    session.add(row)
    await flush_new(session, _USER, name)
    return row


async def find_user(session: AsyncSession, user: str, *, lock: bool = False) -> UserRow | None:
    """The user named `tenants/{t}/users/{u}`, or None."""
    tenant_id, username = _principal_parts(user, PrincipalKind.USER, "user")
    statement = select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.username == username)
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_user(session: AsyncSession, user: str, *, lock: bool = False) -> UserRow:
    """The user; NotFoundError if there is none."""
    row = await find_user(session, user, lock=lock)
    if row is None:
        raise NotFoundError(_USER, user)
    return row


async def list_users(
    session: AsyncSession, tenant: str, *, page_size: int, after: str | None = None
) -> Page[UserRow]:
    """The tenant's users in name order, `page_size` at a time, after the user name `after`."""
    size = checked_page_size(page_size)
    statement = (
        select(UserRow)
        .where(UserRow.tenant_id == _tenant_id(tenant))
        .order_by(UserRow.username)
        .limit(size + 1)
    )
    if after is not None:
        _, username = _principal_parts(after, PrincipalKind.USER, "page_token")
        statement = statement.where(UserRow.username > username)
    rows = list((await session.execute(statement)).scalars())
    return page_of(rows, size, rows[size - 1].name if len(rows) > size else None)


async def disable_user(session: AsyncSession, user: str, *, now: datetime) -> UserRow:
    """Mark the user disabled (unchanged if it is already); NotFoundError if there is none."""
    row = await get_user(session, user, lock=True)
    if row.state != State.DISABLED.value:
        row.state = State.DISABLED.value
        row.update_time = now
        await bump_access_state_version(session)
    return row


async def set_user_password(
    session: AsyncSession, user: str, *, password_hash: str, now: datetime
) -> UserRow:
    """Replace the user's password hash; NotFoundError if there is no such user."""
    row = await get_user(session, user, lock=True)
    row.password_hash = password_hash
    row.update_time = now
    return row


# Service accounts


async def create_service_account(
    session: AsyncSession,
    tenant: str,
    service_account_id: str,
    *,
    secret_hash: str,
    display_name: str = "",
    description: str = "",
    now: datetime,
) -> ServiceAccountRow:
    """Add service account `{tenant}/serviceAccounts/{id}` with a new random client id.

    `secret_hash` is the hash of its client secret (the secret itself is never stored).
    NotFoundError if the tenant does not exist, AlreadyExistsError if the account does.
    """
    name = f"{tenant_name(tenant)}/serviceAccounts/{service_account_id}"
    tenant_id, account_id = _principal_parts(
        name, PrincipalKind.SERVICE_ACCOUNT, "service_account_id"
    )
    await get_tenant(session, tenant)
    row = ServiceAccountRow(
        uid=str(uuid.uuid4()),
        tenant_id=tenant_id,
        account_id=account_id,
        display_name=display_name,
        description=description,
        client_id=str(uuid.uuid4()),
        secret_hash=secret_hash,
        state=State.ACTIVE.value,
        create_time=now,
        update_time=now,
    )
    session.add(row)
    await flush_new(session, _SERVICE_ACCOUNT, name)
    return row


async def find_service_account(
    session: AsyncSession, service_account: str, *, lock: bool = False
) -> ServiceAccountRow | None:
    """The service account named `tenants/{t}/serviceAccounts/{id}`, or None."""
    tenant_id, account_id = _principal_parts(
        service_account, PrincipalKind.SERVICE_ACCOUNT, "service_account"
    )
    statement = select(ServiceAccountRow).where(
        ServiceAccountRow.tenant_id == tenant_id, ServiceAccountRow.account_id == account_id
    )
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_service_account(
    session: AsyncSession, service_account: str, *, lock: bool = False
) -> ServiceAccountRow:
    """The service account; NotFoundError if there is none."""
    row = await find_service_account(session, service_account, lock=lock)
    if row is None:
        raise NotFoundError(_SERVICE_ACCOUNT, service_account)
    return row


async def find_service_account_by_client_id(
    session: AsyncSession, client_id: str
) -> ServiceAccountRow | None:
    """The service account with this OAuth client id, or None (client credentials grant)."""
    statement = select(ServiceAccountRow).where(ServiceAccountRow.client_id == client_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def list_service_accounts(
    session: AsyncSession, tenant: str, *, page_size: int, after: str | None = None
) -> Page[ServiceAccountRow]:
    """The tenant's service accounts in name order, after the account name `after`."""
    size = checked_page_size(page_size)
    statement = (
        select(ServiceAccountRow)
        .where(ServiceAccountRow.tenant_id == _tenant_id(tenant))
        .order_by(ServiceAccountRow.account_id)
        .limit(size + 1)
    )
    if after is not None:
        _, account_id = _principal_parts(after, PrincipalKind.SERVICE_ACCOUNT, "page_token")
        statement = statement.where(ServiceAccountRow.account_id > account_id)
    rows = list((await session.execute(statement)).scalars())
    return page_of(rows, size, rows[size - 1].name if len(rows) > size else None)


async def disable_service_account(
    session: AsyncSession, service_account: str, *, now: datetime
) -> ServiceAccountRow:
    """Mark the service account disabled (unchanged if it is already); NotFoundError if none."""
    row = await get_service_account(session, service_account, lock=True)
    if row.state != State.DISABLED.value:
        row.state = State.DISABLED.value
        row.update_time = now
        await bump_access_state_version(session)
    return row
