"""The llm migrations: they build exactly the ledger's schema on SQLite and PostgreSQL, in
their own version table, once however often they run, and undo cleanly."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mainmast.db import DatabasePool, alembic_config
from mainmast.testing import schema_differences, sqlite_table_names, table_names
from mainmast_llm._ledger_migrations import MIGRATIONS, VERSION_TABLE, migrate_database
from mainmast_llm._ledger_schema import ledger_metadata, usage_records

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
        assert await migrate_database(pool) == ("0002",)
        async with pool.connection() as connection:
            tables = await connection.run_sync(table_names)
            differences = await connection.run_sync(_schema_differences)
    finally:
        await pool.close()
    assert LLM_TABLES | {VERSION_TABLE} <= tables
    assert all(name.startswith("llm_") for name in LLM_TABLES | {VERSION_TABLE})
    assert differences == []


async def test_migrating_again_changes_nothing(database_url: str) -> None:
    assert await migrate_database(database_url) == ("0002",)
    assert await migrate_database(database_url) == ("0002",)


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


async def _insert_row(pool: DatabasePool, record_id: str, outcome: str, minute: int) -> None:
    row = {
        "record_id": record_id,
        "request_id": "req-1",
        "tenant": "acme",
        "subject": "tenants/acme/users/olga",
        "model_alias": "gpt-4",
        "deployment": "",
        "provider": "",
        "model": "",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_micros": 0,
        "currency_code": "USD",
        "latency_micros": 0,
        "outcome": outcome,
        "occurred_at": datetime(2026, 1, 1, 12, minute, tzinfo=UTC),
        "usage_date": date(2026, 1, 1),
    }
    async with pool.connection() as connection:
        await connection.execute(insert(usage_records), [row])
        await connection.commit()


async def test_failures_may_share_a_request_id_from_0002_and_are_thinned_out_going_back(
    fresh_database_url: str,
) -> None:
    config = alembic_config(MIGRATIONS, url=fresh_database_url, version_table=VERSION_TABLE)
    pool = DatabasePool(fresh_database_url, pool_size=1, max_overflow=0)
    try:
        await migrate_database(pool, revision="0001")
        await _insert_row(pool, "a", "quota_exceeded", 0)
        with pytest.raises(IntegrityError):  # 0001: one row per request id
            await _insert_row(pool, "b", "quota_exceeded", 1)
        await migrate_database(pool, revision="0002")
        await _insert_row(pool, "b", "quota_exceeded", 1)
        await _insert_row(pool, "c", "succeeded", 2)
        with pytest.raises(IntegrityError):  # still one success per request id
            await _insert_row(pool, "d", "succeeded", 3)
        # The command line's way back runs its own event loop, so it gets a thread.
        await asyncio.to_thread(command.downgrade, config, "0001")
        async with pool.connection() as connection:
            kept = (await connection.execute(select(usage_records.c.record_id))).all()
    finally:
        await pool.close()

    assert [row.record_id for row in kept] == ["c"]
