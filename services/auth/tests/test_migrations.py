"""The auth migrations: they build the models' schema on SQLite and PostgreSQL, run at
service start, run once when repeated, and undo cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from mainmast.db import DatabasePool, alembic_config
from mainmast.testing import schema_differences, sqlite_table_names, table_names
from mainmast_auth._models import Base, PolicyLineRow, RequestRecordRow
from mainmast_auth._store_access_state import access_state_version
from mainmast_auth._store_migrations import MIGRATIONS, VERSION_TABLE, migrate_database
from mainmast_auth._store_policies import policy_version
from mainmast_auth.service import AuthService
from mainmast_auth.settings import AuthSettings

AUTH_TABLES = frozenset(Base.metadata.tables)


def _schema_differences(connection: Connection) -> list[Any]:
    return schema_differences(
        connection, Base.metadata, tables=AUTH_TABLES, version_table=VERSION_TABLE
    )


@pytest.fixture
def database_url(fresh_database_url: str) -> str:
    """An empty database of the test's own on each backend: starting the service there
    creates its signing key, which must not meet the keys other tests keep in the run's
    shared database."""
    return fresh_database_url


async def test_the_migrations_build_exactly_the_models_schema(database_url: str) -> None:
    pool = DatabasePool(database_url, pool_size=1, max_overflow=0)
    try:
        assert await migrate_database(pool) == ("0002",)
        async with pool.connection() as connection:
            tables = await connection.run_sync(table_names)
            differences = await connection.run_sync(_schema_differences)
    finally:
        await pool.close()
    assert AUTH_TABLES | {VERSION_TABLE} <= tables
    assert differences == []


async def test_migrating_again_changes_nothing(database_url: str) -> None:
    assert await migrate_database(database_url) == ("0002",)
    assert await migrate_database(database_url) == ("0002",)


async def test_the_policy_version_starts_at_zero(sqlite_url: str) -> None:
    pool = DatabasePool(sqlite_url, pool_size=1, max_overflow=0)
    try:
        await migrate_database(pool)
        async with pool.session() as session:
            assert await policy_version(session) == 0
    finally:
        await pool.close()


async def test_upgrading_from_0001_keeps_the_policy_and_starts_the_new_tables_empty(
    database_url: str,
) -> None:
    pool = DatabasePool(database_url, pool_size=1, max_overflow=0)
    try:
        assert await migrate_database(pool, revision="0001") == ("0001",)
        async with pool.connection() as connection:
            await connection.execute(
                text(
                    "INSERT INTO auth_policy_lines (ptype, v0, v1, v2, v3, v4, v5) "
                    "VALUES ('g', 'tenants/acme/users/alice', 'tenants/acme/roles/admin', "
                    "'tenants/acme', '', '', '')"
                )
            )
        assert await migrate_database(pool) == ("0002",)
        async with pool.session() as session:
            lines = (await session.execute(select(PolicyLineRow))).scalars().all()
            access_version = await access_state_version(session)
            records = (await session.execute(select(RequestRecordRow))).scalars().all()
    finally:
        await pool.close()
    assert [(line.v0, line.create_time) for line in lines] == [("tenants/acme/users/alice", None)]
    assert access_version == 0
    assert records == []


def test_the_migrations_undo_to_an_empty_database_and_redo(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    config = alembic_config(MIGRATIONS, url=f"sqlite:///{path}", version_table=VERSION_TABLE)
    command.upgrade(config, "head")
    assert sqlite_table_names(path) >= AUTH_TABLES
    command.downgrade(config, "base")
    assert sqlite_table_names(path) & AUTH_TABLES == set()
    command.upgrade(config, "head")
    assert sqlite_table_names(path) >= AUTH_TABLES


async def test_the_service_migrates_its_database_at_startup(database_url: str) -> None:
    service = AuthService(AuthSettings(database_url=SecretStr(database_url)))
    await service.startup()
    try:
        async with service.database.connection() as connection:
            tables = await connection.run_sync(table_names)
    finally:
        await service.shutdown()
    assert tables >= AUTH_TABLES
    with pytest.raises(RuntimeError, match="only between startup and shutdown"):
        _ = service.database


async def test_with_no_database_url_the_service_uses_sqlite_in_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAINMAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MAINMAST_AUTH_DATABASE_URL", raising=False)
    service = AuthService(AuthSettings())
    await service.startup()
    try:
        assert service.database.backend == "sqlite"
    finally:
        await service.shutdown()
    assert (tmp_path / "auth.db").is_file()


@pytest.mark.postgres
def test_the_database_url_setting_selects_postgresql(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAINMAST_AUTH_DATABASE_URL", postgres_url)
    settings = AuthSettings()
    assert settings.database_target() == postgres_url
    assert DatabasePool(settings.database_target()).backend == "postgresql"
    # The URL's password never shows in the settings' repr.
    assert postgres_url not in repr(settings)
