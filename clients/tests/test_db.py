"""DatabasePool on SQLite and on PostgreSQL: sessions, load, failures, health."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from structlog.testing import capture_logs

import mainmast.db
from mainmast.db import (
    DATA_DIR_ENV,
    DatabaseErrorReason,
    DatabasePool,
    PoolState,
)
from mainmast.errors import UnavailableError

PASSWORD = "Sup3r-Secret-pw"
WAIT_LIMIT = 60.0  # bounds every wait, so a hang fails the test instead of blocking the run


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[DatabasePool]:
    """A pool with the default sizes, closed after the test."""
    database = DatabasePool(database_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening, so nobody takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def with_query(url: str, **parameters: str) -> str:
    """`url` with extra query parameters, password kept."""
    return make_url(url).update_query_dict(parameters).render_as_string(hide_password=False)


def unique_table() -> sa.Table:
    """A table of its own for each test: the PostgreSQL database is shared by the run."""
    return sa.Table(
        f"t_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50), nullable=False),
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds; fail after WAIT_LIMIT seconds."""
    try:
        async with asyncio.timeout(WAIT_LIMIT):
            # Polling, not an Event: what is awaited happens in the database or another task.
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"gave up waiting: {what}")


async def create_table(pool: DatabasePool, table: sa.Table) -> None:
    async with pool.connection() as connection:
        await connection.run_sync(table.create)


async def count_rows(pool: DatabasePool, table: sa.Table) -> int:
    async with pool.session() as session:
        return (await session.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


def texts_of(error: UnavailableError) -> list[str]:
    """Everything an error shows a caller or a log."""
    return [str(error), repr(error), error.message, repr(error.metadata)]


async def test_session_commits_when_the_block_ends(pool: DatabasePool) -> None:
    table = unique_table()
    await create_table(pool, table)
    async with pool.session() as session:
        await session.execute(sa.insert(table).values(id=1, name="kept"))
    async with pool.session() as session:
        names = (await session.execute(sa.select(table.c.name))).scalars().all()
    assert names == ["kept"]


async def test_session_rolls_back_when_the_block_raises(pool: DatabasePool) -> None:
    table = unique_table()
    await create_table(pool, table)

    class DeliberateError(Exception):
        pass

    async def insert_then_fail() -> None:
        async with pool.session() as session:
            await session.execute(sa.insert(table).values(id=1, name="gone"))
            raise DeliberateError

    with pytest.raises(DeliberateError):
        await insert_then_fail()
    assert await count_rows(pool, table) == 0


async def test_connection_commits_and_rolls_back_like_a_session(pool: DatabasePool) -> None:
    table = unique_table()
    await create_table(pool, table)
    async with pool.connection() as connection:
        await connection.execute(sa.insert(table).values(id=1, name="kept"))

    async def insert_then_fail() -> None:
        async with pool.connection() as connection:
            await connection.execute(sa.insert(table).values(id=2, name="gone"))
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        await insert_then_fail()
    assert await count_rows(pool, table) == 1


async def test_statement_errors_are_not_disguised_as_unavailability(pool: DatabasePool) -> None:
    table = unique_table()
    await create_table(pool, table)

    async def run(statement: sa.Executable) -> None:
        async with pool.session() as session:
            await session.execute(statement)

    await run(sa.insert(table).values(id=1, name="a"))
    with pytest.raises(IntegrityError):
        await run(sa.insert(table).values(id=1, name="b"))
    for statement in ["SELEC 1", "SELECT no_such_column", "SELECT * FROM no_such_table"]:
        with pytest.raises(DBAPIError) as raised:
            await run(sa.text(statement))
        assert not isinstance(raised.value, UnavailableError)
    assert (await pool.check_health()).last_error is None


async def test_500_concurrent_sessions_on_a_20_plus_10_pool_all_complete(
    database_url: str,
) -> None:
    table = unique_table()
    inside = 0
    most_inside = 0

    async def one_session(number: int) -> None:
        nonlocal inside, most_inside
        async with pool.session() as session:
            inside += 1
            most_inside = max(most_inside, inside)
            await session.execute(sa.select(sa.func.count()).select_from(table))
            await asyncio.sleep(0.01)  # hold the connection while others queue for one
            await session.execute(sa.insert(table).values(id=number, name="row"))
            inside -= 1

    pool = DatabasePool(database_url, pool_size=20, max_overflow=10)
    try:
        await create_table(pool, table)
        async with asyncio.timeout(WAIT_LIMIT):
            await asyncio.gather(*(one_session(number) for number in range(500)))
        assert await count_rows(pool, table) == 500
        assert most_inside <= 30
        health = await pool.check_health()
        assert health.state is PoolState.HEALTHY
        assert (health.checked_out, health.waiting) == (0, 0)
    finally:
        await pool.close()


async def test_refused_connection_raises_unavailable_and_health_is_down(closed_port: int) -> None:
    url = f"postgresql://svc:{PASSWORD}@127.0.0.1:{closed_port}/app"
    with capture_logs() as logs:
        pool = DatabasePool(url, connect_timeout=5.0)
        try:
            async with asyncio.timeout(WAIT_LIMIT):
                with pytest.raises(UnavailableError) as raised:
                    async with pool.session() as session:
                        await session.execute(sa.text("SELECT 1"))
                health = await pool.check_health()
        finally:
            await pool.close()
    error = raised.value
    assert error.reason == DatabaseErrorReason.UNAVAILABLE == "DATABASE_UNAVAILABLE"
    assert error.metadata == {"backend": "postgresql"}
    assert isinstance(error.__cause__, OSError)
    assert health.state is PoolState.DOWN
    assert health.last_error is not None
    assert health.last_check is not None
    assert health.last_error_at is not None
    assert [(log["event"], log["log_level"]) for log in logs] == [("db.health.down", "error")]
    shown = [
        *texts_of(error),
        health.last_error,
        repr(health),
        repr(pool),
        str(pool.url),
        repr(logs),
    ]
    assert all(PASSWORD not in text for text in shown)


@pytest.mark.postgres
async def test_rejected_role_is_an_authentication_failure(postgres_url: str) -> None:
    url = make_url(postgres_url).set(username="no_such_role", password=PASSWORD)
    pool = DatabasePool(url)
    try:
        async with asyncio.timeout(WAIT_LIMIT):
            with pytest.raises(UnavailableError) as raised:
                async with pool.session():
                    pass
            health = await pool.check_health()
    finally:
        await pool.close()
    assert raised.value.reason == DatabaseErrorReason.AUTHENTICATION_FAILED
    assert health.state is PoolState.DOWN
    assert all(PASSWORD not in text for text in [*texts_of(raised.value), str(health.last_error)])


@pytest.mark.postgres
async def test_idle_connections_killed_by_the_server_are_replaced_on_checkout(
    postgres_url: str,
) -> None:
    application = f"mainmast_idle_{uuid.uuid4().hex[:8]}"
    pool = DatabasePool(with_query(postgres_url, application_name=application), pool_size=5)
    admin = await asyncpg.connect(postgres_url)
    try:
        first_pids = await hold_connections_at_once(pool, 5)
        assert len(set(first_pids)) == 5
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            application,
        )
        assert killed == 5

        async def all_gone() -> bool:
            return not await backends_of(admin, application)

        await eventually(all_gone, "the terminated backends to exit")
        # The pool still holds five dead connections; each checkout pings and replaces it.
        second_pids = await hold_connections_at_once(pool, 5)
        assert not set(second_pids) & set(first_pids)
        assert (await pool.check_health()).state is PoolState.HEALTHY
    finally:
        await admin.close()
        await pool.close()


@pytest.mark.postgres
async def test_pool_recovers_after_every_backend_is_terminated(postgres_url: str) -> None:
    application = f"mainmast_kill_{uuid.uuid4().hex[:8]}"
    pool = DatabasePool(
        with_query(postgres_url, application_name=application), pool_size=5, max_overflow=5
    )
    admin = await asyncpg.connect(postgres_url)
    try:
        await hold_connections_at_once(pool, 5)  # five open connections: three busy, two idle

        async def sleep_in_the_database() -> None:
            async with pool.session() as session:
                await session.execute(sa.text("SELECT pg_sleep(60)"))

        in_flight = [asyncio.create_task(sleep_in_the_database()) for _ in range(3)]

        async def all_sleeping() -> bool:
            backends = await backends_of(admin, application)
            return sum(query.startswith("SELECT pg_sleep") for _, query in backends) == 3

        await eventually(all_sleeping, "three sessions to sleep in the database")
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            application,
        )
        assert killed == 5
        async with asyncio.timeout(WAIT_LIMIT):
            outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        for outcome in outcomes:
            assert isinstance(outcome, UnavailableError), repr(outcome)
            assert outcome.reason == DatabaseErrorReason.CONNECTION_LOST
            assert isinstance(outcome.__cause__, DBAPIError)
            assert outcome.message.startswith("database connection lost: ")

        # Same pool, no restart: the next sessions get working connections.
        table = unique_table()
        await create_table(pool, table)

        async def insert(number: int) -> None:
            async with pool.session() as session:
                await session.execute(sa.insert(table).values(id=number, name="after"))

        async with asyncio.timeout(WAIT_LIMIT):
            await asyncio.gather(*(insert(number) for number in range(50)))
        assert await count_rows(pool, table) == 50
        health = await pool.check_health()
        assert health.state is PoolState.HEALTHY
        assert "terminating connection" in str(health.last_error)  # remembered, not current
    finally:
        await admin.close()
        await pool.close()


@pytest.mark.postgres
async def test_a_cancelled_session_gives_its_connection_back(postgres_url: str) -> None:
    application = f"mainmast_cancel_{uuid.uuid4().hex[:8]}"
    pool = DatabasePool(with_query(postgres_url, application_name=application), pool_size=1)
    admin = await asyncpg.connect(postgres_url)
    try:

        async def sleep_in_the_database() -> None:
            async with pool.session() as session:
                await session.execute(sa.text("SELECT pg_sleep(60)"))

        task = asyncio.create_task(sleep_in_the_database())

        async def sleeping() -> bool:
            backends = await backends_of(admin, application)
            return any(query.startswith("SELECT pg_sleep") for _, query in backends)

        await eventually(sleeping, "the session to sleep in the database")
        task.cancel()
        async with asyncio.timeout(WAIT_LIMIT):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert (await pool.check_health()).checked_out == 0
        async with asyncio.timeout(WAIT_LIMIT), pool.session() as session:
            assert (await session.execute(sa.text("SELECT 1"))).scalar_one() == 1

        async def not_sleeping() -> bool:
            return not await sleeping()

        await eventually(not_sleeping, "the cancelled query to stop on the server")
    finally:
        await admin.close()
        await pool.close()


async def test_saturation_is_reported_when_every_connection_is_held_and_a_caller_waits(
    database_url: str,
) -> None:
    release = asyncio.Event()
    holding = 0

    async def hold() -> None:
        nonlocal holding
        async with pool.session() as session:
            await session.execute(sa.text("SELECT 1"))
            holding += 1
            await release.wait()

    async def query() -> int:
        async with pool.session() as session:
            return int((await session.execute(sa.text("SELECT 1"))).scalar_one())

    with capture_logs() as logs:
        pool = DatabasePool(database_url, pool_size=2, max_overflow=1, pool_timeout=WAIT_LIMIT)
        try:
            holders = [asyncio.create_task(hold()) for _ in range(3)]

            async def all_held() -> bool:
                return holding == 3

            await eventually(all_held, "three sessions to hold every connection")
            full = await pool.check_health()
            assert (full.state, full.checked_out, full.waiting) == (PoolState.HEALTHY, 3, 0)

            waiter = asyncio.create_task(query())

            async def saturated() -> bool:
                return (await pool.check_health()).state is PoolState.SATURATED

            await eventually(saturated, "the waiting caller to show as saturation")
            health = pool.health()
            assert (health.checked_out, health.waiting, health.capacity) == (3, 1, 3)
            assert (health.size, health.max_overflow, health.overflow) == (2, 1, 1)

            release.set()
            async with asyncio.timeout(WAIT_LIMIT):
                await asyncio.gather(*holders)
                assert await waiter == 1
            after = await pool.check_health()
            assert (after.state, after.checked_out, after.waiting) == (PoolState.HEALTHY, 0, 0)
        finally:
            release.set()
            await pool.close()
    assert [(log["event"], log["log_level"]) for log in logs] == [
        ("db.health.healthy", "info"),
        ("db.health.saturated", "warning"),
        ("db.health.healthy", "info"),
    ]
    assert logs[1]["previous"] == "healthy"
    assert logs[1]["waiting"] == 1


async def test_a_caller_that_waits_out_the_pool_timeout_gets_pool_exhausted(
    database_url: str,
) -> None:
    release = asyncio.Event()
    held = asyncio.Event()

    async def hold() -> None:
        async with pool.session():
            held.set()
            await release.wait()

    pool = DatabasePool(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        holder = asyncio.create_task(hold())
        async with asyncio.timeout(WAIT_LIMIT):
            await held.wait()
            with pytest.raises(UnavailableError) as raised:
                async with pool.session():
                    pass
            release.set()
            await holder
    finally:
        release.set()
        await pool.close()
    error = raised.value
    assert error.reason == DatabaseErrorReason.POOL_EXHAUSTED
    assert error.metadata["pool_size"] == "1"
    assert error.metadata["max_overflow"] == "0"
    assert error.metadata["pool_timeout_seconds"] == "0.2"


async def test_sqlite_down_then_healthy_is_logged_once_each(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the database folder should be")
    database_file = blocker / "db" / "app.db"
    with capture_logs() as logs:
        pool = DatabasePool(f"sqlite+aiosqlite:///{database_file}")
        try:
            down = await pool.check_health()
            assert down.state is PoolState.DOWN
            assert "unable to open database file" in str(down.last_error)
            with pytest.raises(UnavailableError) as raised:
                async with pool.session():
                    pass
            assert raised.value.reason == DatabaseErrorReason.UNAVAILABLE
            assert raised.value.metadata == {"backend": "sqlite"}

            blocker.unlink()
            database_file.parent.mkdir(parents=True)
            healthy = await pool.check_health()
            again = await pool.check_health()
        finally:
            await pool.close()
    assert healthy.state is again.state is PoolState.HEALTHY
    assert healthy.last_error == down.last_error  # the last error is kept after recovery
    assert [(log["event"], log["log_level"], log["previous"]) for log in logs] == [
        ("db.health.down", "error", "unknown"),
        ("db.health.healthy", "info", "down"),
    ]


async def test_background_checks_follow_the_database_down_and_back(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    pool = DatabasePool(f"sqlite+aiosqlite:///{folder / 'app.db'}", health_check_interval=0.05)
    try:
        await pool.start()
        assert pool.health().state is PoolState.HEALTHY
        (folder / "app.db").unlink()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
        folder.write_text("a file where the database folder should be")

        async def state_is(state: PoolState) -> bool:
            return pool.health().state is state

        await eventually(lambda: state_is(PoolState.DOWN), "the background check to see it down")
        folder.unlink()
        folder.mkdir()
        await eventually(lambda: state_is(PoolState.HEALTHY), "the background check to see it back")
    finally:
        await pool.close()


async def test_async_with_starts_and_closes_the_pool(sqlite_url: str) -> None:
    async with DatabasePool(sqlite_url) as pool:
        assert pool.health().state is PoolState.HEALTHY
        async with pool.session() as session:
            assert (await session.execute(sa.text("SELECT 1"))).scalar_one() == 1
    with pytest.raises(UnavailableError) as raised:
        async with pool.session():
            pass
    assert raised.value.reason == DatabaseErrorReason.POOL_CLOSED
    with pytest.raises(RuntimeError, match="closed"):
        await pool.start()


async def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    async with DatabasePool(sqlite_url) as pool, pool.session() as session:

        async def pragma(name: str) -> Any:
            return (await session.execute(sa.text(f"PRAGMA {name}"))).scalar_one()

        assert await pragma("journal_mode") == "wal"
        assert await pragma("busy_timeout") == 5000
        assert await pragma("foreign_keys") == 1
    async with DatabasePool(sqlite_url) as pool:
        async with pool.connection() as connection:
            await connection.execute(sa.text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            await connection.execute(
                sa.text("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))")
            )
        with pytest.raises(IntegrityError):
            async with pool.session() as session:
                await session.execute(sa.text("INSERT INTO child (parent_id) VALUES (42)"))


async def test_no_url_means_sqlite_in_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "not" / "yet" / "there"))
    async with DatabasePool() as pool, pool.session() as session:
        await session.execute(sa.text("CREATE TABLE marker (id INTEGER)"))
    assert pool.backend == "sqlite"
    assert (tmp_path / "not" / "yet" / "there" / "mainmast.db").is_file()


@pytest.mark.postgres
async def test_libpq_parameters_reach_the_server(postgres_url: str) -> None:
    application = f"mainmast_params_{uuid.uuid4().hex[:8]}"
    url = with_query(
        postgres_url,
        sslmode="disable",
        application_name=application,
        options="-c statement_timeout=4321",
    )
    async with DatabasePool(url) as pool, pool.session() as session:
        row = (
            await session.execute(
                sa.text(
                    "SELECT a.application_name, s.ssl, current_setting('statement_timeout')"
                    " FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
                    " WHERE a.pid = pg_backend_pid()"
                )
            )
        ).one()
    assert tuple(row) == (application, False, "4321ms")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"max_overflow": -1}, "max_overflow"),
        ({"pool_timeout": 0}, "pool_timeout"),
        ({"health_check_interval": -1.0}, "health_check_interval"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"pool_recycle": 0}, "pool_recycle"),
    ],
)
def test_impossible_pool_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DatabasePool("sqlite+aiosqlite:///unused.db", **options)


async def hold_connections_at_once(pool: DatabasePool, count: int) -> list[int]:
    """Open `count` sessions that all hold a connection at the same moment; their backend pids."""
    everyone_in = asyncio.Barrier(count)

    async def hold() -> int:
        async with pool.session() as session:
            pid = int((await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())
            await everyone_in.wait()
            return pid

    async with asyncio.timeout(WAIT_LIMIT):
        return list(await asyncio.gather(*(hold() for _ in range(count))))


async def backends_of(admin: asyncpg.Connection, application: str) -> list[tuple[int, str]]:
    """(pid, query) of the server processes serving `application`."""
    rows = await admin.fetch(
        "SELECT pid, query FROM pg_stat_activity WHERE application_name = $1", application
    )
    return [(row["pid"], row["query"]) for row in rows]


def test_the_public_names_are_pinned() -> None:
    assert mainmast.db.__all__ == [
        "DATA_DIR_ENV",
        "DEFAULT_VERSION_TABLE",
        "Backend",
        "DatabaseErrorReason",
        "DatabasePool",
        "DatabaseTarget",
        "DatabaseUrlError",
        "PoolHealth",
        "PoolState",
        "alembic_config",
        "default_sqlite_url",
        "migration_lock_key",
        "normalize_database_url",
        "resolve_script_location",
        "run_migrations",
        "upgrade_database",
    ]


async def test_statement_parameters_stay_out_of_error_text(sqlite_url: str) -> None:
    from sqlalchemy import text  # noqa: PLC0415 - only this test builds raw statements
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    async with DatabasePool(sqlite_url) as pool:
        with pytest.raises(OperationalError, match="no such table") as raised:
            async with pool.session() as session:
                await session.execute(
                    text("SELECT * FROM missing WHERE x = :x"), {"x": "s3cr3t-hash"}
                )

    assert "s3cr3t-hash" not in str(raised.value)
