"""What `mainmast-auth`'s administrative commands do, straight on the service's database.

The operator running them on the service's pod holds the database itself, so there is
no caller to authorise: `OperatorAdmin` is the admin RPCs' logic (validation, policy
version bumps, audit events) with every permission check passed. `issue_token` signs
an access token for any enabled principal without a login, for operators and tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select

from mainmast.db import DatabasePool
from mainmast.errors import FailedPreconditionError, ValidationError
from mainmast.logging import get_logger

from . import _store_directory as directory
from ._admin_service import AdminService, RoleAssignment
from ._authorizer import Authorizer
from ._models import PolicyLineRow, ServiceAccountRow, State, UserRow
from ._passwords import PasswordHasher
from ._policy_model import Section
from ._policy_sync import PolicySync
from ._resource_names import PrincipalKind, RoleName, principal_kind, tenant_of_principal
from ._servicer_keys import signing_keys
from ._store_migrations import migrate_database
from ._tokens import AccessTokenIssuer, IssuedAccessToken
from .settings import AuthSettings

OPERATOR: Final = "operator:mainmast-auth"
"""The acting subject of the audit events of administrative commands."""


class OperatorAdmin(AdminService):
    """`AdminService` for the operator holding the database: no permission checks."""

    __slots__ = ()

    def _require(self, caller: str, tenant: str, permission: str) -> None:
        """Nothing to check: the operator owns the database."""

    def _require_platform(self, caller: str, permission: str) -> None:
        """Nothing to check: the operator owns the database."""

    def _require_for_role(self, caller: str, role: RoleName, permission: str) -> None:
        """Nothing to check: the operator owns the database."""

    async def assign_role(self, caller: str, principal: str, role: str) -> RoleAssignment:
        """Give `principal` the role; for `roles/platform-admin`, its grant is stored first
        (an install whose first admin came from this command has none yet)."""
        if RoleName.parse(role).is_platform_role:
            await self._commit_policy(Authorizer().add_platform_role())
        return await super().assign_role(caller, principal, role)


@asynccontextmanager
async def open_database(settings: AuthSettings) -> AsyncIterator[DatabasePool]:
    """The service's database, its schema brought up to date first."""
    database = DatabasePool(settings.database_target(), pool_size=1, max_overflow=0)
    try:
        await migrate_database(database)
        await database.start()
        yield database
    finally:
        await database.close()


@asynccontextmanager
async def operator_admin(settings: AuthSettings) -> AsyncIterator[OperatorAdmin]:
    """An `OperatorAdmin` on the service's database, its policy loaded once (no polling)."""
    async with open_database(settings) as database:
        sync = PolicySync(database)
        await sync.refresh()
        hasher = await asyncio.to_thread(PasswordHasher, settings.password_hash_parameters())
        yield OperatorAdmin(database, sync, hasher)


def _disabled(what: str) -> FailedPreconditionError:
    return FailedPreconditionError(f"{what} is disabled; no token is issued for it.")


async def issue_token(
    database: DatabasePool, settings: AuthSettings, principal: str, scopes: Sequence[str]
) -> IssuedAccessToken:
    """Sign an access token for `principal` with its current roles, bypassing login.

    NotFoundError if the principal does not exist; FailedPreconditionError if it or its
    tenant is disabled.
    """
    tenant = tenant_of_principal(principal)
    for scope in scopes:
        if not scope or any(character.isspace() or character in '"\\' for character in scope):
            raise ValidationError(f"The scope {scope!r} is not an OAuth scope token.")
    async with database.session() as session:
        tenant_row = await directory.get_tenant(session, tenant)
        account: UserRow | ServiceAccountRow
        client_id = None
        if principal_kind(principal) is PrincipalKind.USER:
            account = await directory.get_user(session, principal)
        else:
            account = await directory.get_service_account(session, principal)
            client_id = account.client_id
        statement = select(PolicyLineRow.v1).where(
            PolicyLineRow.ptype == Section.ASSIGNMENT.value, PolicyLineRow.v0 == principal
        )
        roles = sorted(set((await session.execute(statement)).scalars()))
    if tenant_row.state != State.ACTIVE.value:
        raise _disabled(tenant)
    if account.state != State.ACTIVE.value:
        raise _disabled(principal)
    ring, _ = await signing_keys(database, settings, now=datetime.now(UTC))
    issuer = AccessTokenIssuer(
        issuer=settings.issuer,
        audience=settings.audience,
        lifetime=timedelta(seconds=settings.access_token_lifetime_seconds),
    )
    access = issuer.issue(
        ring.active,
        subject=principal,
        tenant=tenant,
        roles=roles,
        scopes=scopes,
        client_id=client_id,
    )
    get_logger("mainmast_auth.tokens").info(
        "auth.token_issued",
        tenant=tenant,
        subject=principal,
        grant="operator",
        acting=OPERATOR,
        token_id=access.token_id,
    )
    return access
