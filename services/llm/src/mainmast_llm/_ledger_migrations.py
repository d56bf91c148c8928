"""Bringing the llm service's database up to date: at service start and `mainmast-llm migrate`."""

from __future__ import annotations

from typing import Final

from sqlalchemy.engine import URL

from mainmast.db import DatabasePool, upgrade_database

MIGRATIONS: Final = "mainmast_llm:migrations"
"""Where the llm service's Alembic migrations live (`package:folder`)."""

VERSION_TABLE: Final = "llm_alembic_version"
"""The llm service's own Alembic version table, so services can share one database."""


async def migrate_database(
    database: DatabasePool | str | URL | None, *, revision: str = "head"
) -> tuple[str, ...]:
    """Apply the llm migrations up to `revision` (head by default); the revisions now current.

    Safe from several replicas at once and again on an up-to-date database (it does
    nothing then). An unreachable database raises UnavailableError.
    """
    return await upgrade_database(
        database, script_location=MIGRATIONS, revision=revision, version_table=VERSION_TABLE
    )
