"""The first platform admin: created at startup from settings, or how to create it.

A fresh install has nobody who may call the admin RPCs. At each start that finds no
platform admin, the service either creates one from `MAINMAST_AUTH_BOOTSTRAP_ADMIN_*`
(for deployments that keep the password in a secret store) or logs one line telling
the operator how to create it with `mainmast-auth bootstrap-admin`.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select

from mainmast.db import DatabasePool
from mainmast.errors import AlreadyExistsError, FailedPreconditionError
from mainmast.logging import get_logger

from ._admin_service import bootstrap_platform_admin
from ._models import PolicyLineRow
from ._passwords import PasswordHasher
from ._policy_model import Section
from ._resource_names import PLATFORM_ADMIN_ROLE, PLATFORM_DOMAIN
from .settings import AuthSettings

BOOTSTRAP_HINT: Final = (
    "no platform admin yet: create one with `mainmast-auth bootstrap-admin TENANT USERNAME`"
    " (password on a prompt or --password-stdin) against this database, or set"
    " MAINMAST_AUTH_BOOTSTRAP_ADMIN_TENANT, MAINMAST_AUTH_BOOTSTRAP_ADMIN_USERNAME and"
    " MAINMAST_AUTH_BOOTSTRAP_ADMIN_PASSWORD and restart"
)
"""The line a start with no platform admin and no bootstrap settings logs."""


def tenant_resource_name(value: str) -> str:
    """`tenants/{value}` for a bare tenant id; a resource name as given."""
    return value if "/" in value else f"tenants/{value}"


async def has_platform_admin(database: DatabasePool) -> bool:
    """Whether any principal holds `roles/platform-admin`."""
    statement = (
        select(PolicyLineRow.v0)
        .where(
            PolicyLineRow.ptype == Section.ASSIGNMENT.value,
            PolicyLineRow.v1 == PLATFORM_ADMIN_ROLE,
            PolicyLineRow.v2 == PLATFORM_DOMAIN,
        )
        .limit(1)
    )
    async with database.session() as session:
        return (await session.execute(statement)).first() is not None


async def bootstrap_on_start(
    database: DatabasePool, hasher: PasswordHasher, settings: AuthSettings
) -> str | None:
    """Make sure a platform admin exists or the operator is told how to make one.

    With a platform admin already there, nothing happens (so the bootstrap settings may
    stay set on every start). Otherwise the admin of the bootstrap settings is created;
    without them the hint is logged once. The created admin's resource name, else None.
    FailedPreconditionError if the bootstrap user exists without being a platform admin:
    the service does not promote an existing account on its own.
    """
    if await has_platform_admin(database):
        return None
    log = get_logger("mainmast_auth.bootstrap")
    tenant, username, password = (
        settings.bootstrap_admin_tenant,
        settings.bootstrap_admin_username,
        settings.bootstrap_admin_password,
    )
    if tenant is None or username is None or password is None:
        log.warning("auth.no_platform_admin", hint=BOOTSTRAP_HINT)
        return None
    try:
        return await bootstrap_platform_admin(
            database,
            hasher,
            tenant=tenant_resource_name(tenant),
            username=username,
            password=password.get_secret_value(),
        )
    except AlreadyExistsError as exc:
        # Another replica starting at the same time may have won the race.
        if await has_platform_admin(database):
            return None
        user = f"{tenant_resource_name(tenant)}/users/{username}"
        raise FailedPreconditionError(
            f"{user} exists but is not a platform admin; give it the role with"
            f" `mainmast-auth role assign {user} {PLATFORM_ADMIN_ROLE}`"
            " or name another user in MAINMAST_AUTH_BOOTSTRAP_ADMIN_USERNAME."
        ) from exc
