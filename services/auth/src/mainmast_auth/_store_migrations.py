"""Bringing the auth service's database up to date: at service start and `mainmast-auth migrate`."""

from __future__ import annotations

from typing import Final

from sqlalchemy.engine import URL

from mainmast.db import DatabasePool, upgrade_database

MIGRATIONS: Final = "mainmast_auth:migrations"
"""Where the auth service's Alembic migrations live (`package:folder`)."""

VERSION_TABLE: Final = "auth_alembic_version"
"""The auth service's own Alembic version table, so services can share one database."""


async def migrate_database(
    database: DatabasePool | str | URL | None, *, revision: str = "head"
) -> tuple[str, ...]:
    """Apply the auth migrations up to `revision` (head by default); the revisions now current.

    Safe to run from several replicas at once (each migration is applied once) and again
    on an up-to-date database (it does nothing). Unreachable database: UnavailableError.
    """
    return await upgrade_database(
        database, script_location=MIGRATIONS, revision=revision, version_table=VERSION_TABLE
    )
