"""The Alembic helper: upgrades on SQLite and PostgreSQL, idempotent, one at a time."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from mainmast.db import (
    DatabaseErrorReason,
    DatabasePool,
    alembic_config,
    migration_lock_key,
    resolve_script_location,
    upgrade_database,
)
from mainmast.errors import UnavailableError

MIGRATIONS = Path(__file__).parent / "test_db_migration_set"
WAIT_LIMIT = 60.0  # bounds every wait, so a hang fails the test instead of blocking the run
UPGRADE_IN_A_PROCESS = """
import asyncio, sys
from mainmast.db import upgrade_database
heads = asyncio.run(upgrade_database(sys.argv[1], script_location=sys.argv[2]))
print(",".join(heads))
"""


@pytest.fixture
async def postgres_schema_url(postgres_url: str) -> AsyncIterator[str]:
    """A URL whose connections work in a schema of their own (through libpq `options`)."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield (
            make_url(postgres_url)
            .update_query_dict({"options": f"-c search_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database: a SQLite file, or a fresh schema on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_schema_url"
    url: str = request.getfixturevalue(fixture)
    return url


async def tables_of(pool: DatabasePool) -> set[str]:
    async with pool.connection() as connection:
        return set(await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


async def test_upgrade_applies_every_migration_and_is_idempotent(database_url: str) -> None:
    assert await upgrade_database(database_url, script_location=str(MIGRATIONS)) == ("0002",)
    async with DatabasePool(database_url) as pool:
        assert {"accounts", "notes", "alembic_version"} <= await tables_of(pool)
        async with pool.session() as session:
            await session.execute(sa.text("INSERT INTO accounts (id, name) VALUES (1, 'acme')"))
            await session.execute(
                sa.text("INSERT INTO notes (id, account_id, body) VALUES (1, 1, 'hello')")
            )
        with pytest.raises(IntegrityError):  # the foreign key of 0002 is in force
            async with pool.session() as session:
                await session.execute(
                    sa.text("INSERT INTO notes (id, account_id, body) VALUES (2, 99, 'orphan')")
                )

        assert await upgrade_database(pool, script_location=str(MIGRATIONS)) == ("0002",)
        async with pool.session() as session:
            rows = (await session.execute(sa.text("SELECT body FROM notes"))).scalars().all()
            versions = (
                (await session.execute(sa.text("SELECT version_num FROM alembic_version")))
                .scalars()
                .all()
            )
        assert rows == ["hello"]
        assert versions == ["0002"]
        # A pool handed in stays open for the service.
        assert (await pool.check_health()).state.value == "healthy"


async def test_upgrade_stops_at_the_requested_revision(database_url: str) -> None:
    heads = await upgrade_database(database_url, script_location=str(MIGRATIONS), revision="0001")
    assert heads == ("0001",)
    async with DatabasePool(database_url) as pool:
        assert "notes" not in await tables_of(pool)
        assert await upgrade_database(pool, script_location=str(MIGRATIONS)) == ("0002",)
        assert "notes" in await tables_of(pool)


async def test_each_version_table_keeps_its_own_history(sqlite_url: str) -> None:
    await upgrade_database(
        sqlite_url, script_location=str(MIGRATIONS), revision="0001", version_table="auth_version"
    )
    async with DatabasePool(sqlite_url) as pool:
        tables = await tables_of(pool)
        assert "auth_version" in tables
        assert "alembic_version" not in tables


async def test_an_unreachable_database_raises_unavailable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"postgresql://svc:hunter2-pw@127.0.0.1:{sock.getsockname()[1]}/app"
        async with asyncio.timeout(WAIT_LIMIT):
            with pytest.raises(UnavailableError) as raised:
                await upgrade_database(url, script_location=str(MIGRATIONS))
    assert raised.value.reason == DatabaseErrorReason.UNAVAILABLE
    assert "hunter2-pw" not in str(raised.value)


def test_alembic_commands_work_on_the_same_env_py(sqlite_url: str) -> None:
    # What a developer does from a shell: no running event loop, the URL in the config.
    command.upgrade(alembic_config(str(MIGRATIONS), url=sqlite_url), "0001")
    command.upgrade(alembic_config(str(MIGRATIONS), url=sqlite_url), "head")
    engine = sa.create_engine(make_url(sqlite_url).set(drivername="sqlite"))
    try:
        with engine.connect() as connection:
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == "0002"
    finally:
        engine.dispose()


def test_offline_mode_writes_the_sql_instead(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command.upgrade(alembic_config(str(MIGRATIONS), url=sqlite_url), "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE accounts" in sql
    assert "CREATE TABLE notes" in sql
    assert not Path(str(make_url(sqlite_url).database)).exists()


def test_env_py_without_a_database_says_how_to_give_one() -> None:
    with pytest.raises(RuntimeError, match="upgrade_database"):
        command.upgrade(alembic_config(str(MIGRATIONS)), "head")


@pytest.fixture
def migrations_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable package `<name>` holding the test migrations in `<name>/db/migrations`."""
    name = f"service_{uuid.uuid4().hex[:8]}"
    package = tmp_path / "packages" / name
    (package / "db").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "db" / "__init__.py").write_text("")
    shutil.copytree(
        MIGRATIONS, package / "db" / "migrations", ignore=shutil.ignore_patterns("__pycache__")
    )
    monkeypatch.syspath_prepend(str(tmp_path / "packages"))
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop(f"{name}.db", None)


async def test_script_location_may_name_a_package_folder(
    migrations_package: str, sqlite_url: str
) -> None:
    location = f"{migrations_package}:db/migrations"
    assert resolve_script_location(location).samefile(
        Path(sys.modules[migrations_package].__file__ or "").parent / "db" / "migrations"
    )
    assert await upgrade_database(sqlite_url, script_location=location) == ("0002",)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("no_such_package_here:migrations", "no package 'no_such_package_here'"),
        ("mainmast:no/such/folder", "is not a folder"),
        ("/no/such/folder/anywhere", "is not a folder"),
    ],
)
def test_script_locations_that_do_not_exist_are_refused(location: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_script_location(location)


@pytest.mark.postgres
@pytest.mark.slow
async def test_two_processes_upgrading_at_once_take_turns(
    postgres_url: str, postgres_schema_url: str
) -> None:
    admin = await asyncpg.connect(postgres_url)
    processes: list[asyncio.subprocess.Process] = []
    lock = admin.transaction()
    await lock.start()
    locked = True
    try:
        # Hold the migration lock ourselves, so both processes must queue behind it.
        await admin.execute(
            "SELECT pg_advisory_xact_lock($1)", migration_lock_key("alembic_version")
        )
        for _ in range(2):
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    UPGRADE_IN_A_PROCESS,
                    postgres_schema_url,
                    str(MIGRATIONS),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        async with asyncio.timeout(WAIT_LIMIT):
            while True:
                for process in processes:
                    if process.returncode is not None:
                        _, stderr = await process.communicate()
                        pytest.fail(f"an upgrade did not wait for the lock:\n{stderr.decode()}")
                waiting = await admin.fetchval(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                    " WHERE l.locktype = 'advisory' AND NOT l.granted"
                    " AND d.datname = current_database()"
                )
                if waiting == 2:
                    break
                await asyncio.sleep(0.05)
        await lock.rollback()
        locked = False
        async with asyncio.timeout(WAIT_LIMIT):
            results = [await process.communicate() for process in processes]
        for process, (stdout, stderr) in zip(processes, results, strict=True):
            assert process.returncode == 0, stderr.decode()
            assert stdout.decode().splitlines()[-1] == "0002"
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if locked:
            await lock.rollback()
        await admin.close()
    async with DatabasePool(postgres_schema_url) as pool, pool.session() as session:
        versions = (
            (await session.execute(sa.text("SELECT version_num FROM alembic_version")))
            .scalars()
            .all()
        )
    assert versions == ["0002"]
