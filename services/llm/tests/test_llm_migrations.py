"""The llm migrations: they build exactly the ledger's schema on SQLite and PostgreSQL, in
their own version table, once however often they run, and undo cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy.engine import Connection

from mainmast.db import DatabasePool, alembic_config
from mainmast.testing import schema_differences, sqlite_table_names, table_names
from mainmast_llm._ledger_migrations import MIGRATIONS, VERSION_TABLE, migrate_database
from mainmast_llm._ledger_schema import ledger_metadata

LLM_TABLES = frozenset(ledger_metadata.tables)


def _schema_differences(connection: Connection) -> list[Any]:
    return schema_differences(
        connection, ledger_metadata, tables=LLM_TABLES, version_table=VERSION_TABLE
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A database URL on each backend."""
    url: str = request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "postgres_url"
    )
    return url


async def test_the_migrations_build_exactly_the_ledger_schema(database_url: str) -> None:
    pool = DatabasePool(database_url, pool_size=1, max_overflow=0)
    try:
        assert await migrate_database(pool) == ("0001",)
        async with pool.connection() as connection:
            tables = await connection.run_sync(table_names)
            differences = await connection.run_sync(_schema_differences)
    finally:
        await pool.close()
    assert LLM_TABLES | {VERSION_TABLE} <= tables
    assert all(name.startswith("llm_") for name in LLM_TABLES | {VERSION_TABLE})
    assert differences == []


async def test_migrating_again_changes_nothing(database_url: str) -> None:
    assert await migrate_database(database_url) == ("0001",)
    assert await migrate_database(database_url) == ("0001",)


def test_the_migrations_undo_to_an_empty_database_and_redo(tmp_path: Path) -> None:
    # The alembic command line's way in: env.py opens its own connection from the URL.
    path = tmp_path / "llm.db"
    config = alembic_config(MIGRATIONS, url=f"sqlite:///{path}", version_table=VERSION_TABLE)
    command.upgrade(config, "head")
    assert sqlite_table_names(path) >= LLM_TABLES
    command.downgrade(config, "base")
    assert sqlite_table_names(path) & LLM_TABLES == set()
    command.upgrade(config, "head")
    assert sqlite_table_names(path) >= LLM_TABLES
