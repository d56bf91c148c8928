"""The usage ledger's writer on SQLite and PostgreSQL: batches of one INSERT, flushes by size
and by time, nothing lost across a database outage, loud drops when the buffer is full,
and a flush at close."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from mainmast.db import DatabasePool
from mainmast_llm._completion import ProviderKind
from mainmast_llm._ledger import LedgerCounts, UsageLedger
from mainmast_llm._ledger_migrations import migrate_database
from mainmast_llm._ledger_schema import usage_records
from mainmast_llm._usage import CallOutcome, UsageRecord

# Generous bound on waiting for the background writer; never a claim about speed.
_PATIENCE_SECONDS = 60.0


def _tenant() -> str:
    return f"tenants/t-{uuid.uuid4().hex[:12]}"


def _record(tenant: str, number: int = 0, request_id: str = "") -> UsageRecord:
    return UsageRecord(
        tenant=tenant,
        subject="users/ada",
        model_alias="gpt-4",
        deployment="openai-main",
        provider=ProviderKind.OPENAI,
        model="gpt-4o",
        prompt_tokens=10 + number,
        completion_tokens=5,
        cost_micros=100,
        currency_code="USD",
        latency=timedelta(milliseconds=50),
        outcome=CallOutcome.SUCCEEDED,
        occurred_at=datetime.now(UTC),
        request_id=request_id,
    )


async def _eventually(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _PATIENCE_SECONDS
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still waiting for: {what}")
        await asyncio.sleep(0.01)


async def _rows(pool: DatabasePool, tenant: str) -> int:
    async with pool.connection() as connection:
        query = select(func.count()).where(usage_records.c.tenant == tenant)
        return int((await connection.execute(query)).scalar_one())


@contextlib.contextmanager
def _counting_inserts(pool: DatabasePool) -> Iterator[list[int]]:
    """Counts the INSERT statements sent to the ledger table (one entry per statement)."""
    statements: list[int] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO LLM_USAGE_RECORDS"):
            statements.append(1)

    event.listen(pool.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(pool.engine.sync_engine, "before_cursor_execute", before)


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


def _dropped_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "llm.ledger.records_dropped"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[DatabasePool]:
    """A migrated database on each backend."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    database = DatabasePool(url, pool_size=2, max_overflow=0)
    try:
        await migrate_database(database)
        yield database
    finally:
        await database.close()


async def test_a_full_batch_is_one_insert(pool: DatabasePool) -> None:
    tenant = _tenant()
    ledger = UsageLedger(pool, batch_size=25, flush_interval=3600.0)
    with _counting_inserts(pool) as inserts:
        await ledger.start()
        for number in range(100):
            ledger.record(_record(tenant, number))
        await _eventually(lambda: ledger.counts().written == 100, "100 records written")
        assert len(inserts) == 4
        await ledger.close()
    assert await _rows(pool, tenant) == 100
    assert ledger.counts() == LedgerCounts(recorded=100, written=100, dropped=0, pending=0)


async def test_a_partial_batch_is_written_after_the_flush_interval(pool: DatabasePool) -> None:
    tenant = _tenant()
    async with UsageLedger(pool, batch_size=1000, flush_interval=0.05) as ledger:
        with _counting_inserts(pool) as inserts:
            for number in range(7):
                ledger.record(_record(tenant, number))
            await _eventually(lambda: ledger.counts().written == 7, "7 records written")
        assert len(inserts) == 1
    assert await _rows(pool, tenant) == 7


async def test_record_does_not_wait_for_the_database(pool: DatabasePool) -> None:
    # record() is synchronous: everything is queued before the writer runs at all.
    tenant = _tenant()
    async with UsageLedger(pool, batch_size=10, flush_interval=3600.0) as ledger:
        for number in range(35):
            ledger.record(_record(tenant, number))
        assert ledger.counts() == LedgerCounts(recorded=35, written=0, dropped=0, pending=35)
    assert ledger.counts().written == 35


async def test_close_flushes_what_is_pending(pool: DatabasePool) -> None:
    tenant = _tenant()
    ledger = UsageLedger(pool, batch_size=1000, flush_interval=3600.0)
    await ledger.start()
    for number in range(7):
        ledger.record(_record(tenant, number))
    counts = await ledger.close()
    assert counts == LedgerCounts(recorded=7, written=7, dropped=0, pending=0)
    assert await _rows(pool, tenant) == 7


async def test_close_writes_records_made_before_start(pool: DatabasePool) -> None:
    tenant = _tenant()
    ledger = UsageLedger(pool)
    ledger.record(_record(tenant))
    assert (await ledger.close()).written == 1
    assert await _rows(pool, tenant) == 1


async def test_records_after_close_are_dropped_loudly(pool: DatabasePool) -> None:
    registry = CollectorRegistry()
    ledger = UsageLedger(pool, registry=registry)
    await ledger.start()
    await ledger.close()
    with capture_logs() as logs:
        ledger.record(_record(_tenant()))
    assert ledger.counts() == LedgerCounts(recorded=1, written=0, dropped=1, pending=0)
    [line] = _dropped_lines(logs)
    assert (line["log_level"], line["reason"], line["dropped"]) == ("error", "closed", 1)
    assert _metric(registry, "mainmast_llm_ledger_records_dropped_total", reason="closed") == 1


async def test_a_retried_request_id_and_a_rewritten_batch_are_stored_once(
    pool: DatabasePool,
) -> None:
    tenant = _tenant()
    first = _record(tenant, request_id="req-1")
    async with UsageLedger(pool, batch_size=10, flush_interval=0.01) as ledger:
        ledger.record(first)
        ledger.record(_record(tenant, 1, request_id="req-1"))  # the same call, retried
        await _eventually(lambda: ledger.counts().written == 2, "first batch written")
        ledger.record(first)  # the same record again, as after a commit of unknown outcome
        ledger.record(_record(tenant, 2))
        ledger.record(_record(tenant, 3))  # no request id: never a conflict
        await _eventually(lambda: ledger.counts().written == 5, "second batch written")
    assert await _rows(pool, tenant) == 3


async def test_failures_under_a_request_id_are_each_recorded_beside_its_one_success(
    pool: DatabasePool,
) -> None:
    tenant = _tenant()
    refused = dataclasses.replace(
        _record(tenant, request_id="req-1"),
        deployment="",
        provider=None,
        model="",
        prompt_tokens=0,
        completion_tokens=0,
        cost_micros=0,
        outcome=CallOutcome.QUOTA_EXCEEDED,
    )
    async with UsageLedger(pool, batch_size=10, flush_interval=0.01) as ledger:
        ledger.record(refused)
        ledger.record(dataclasses.replace(refused, record_id=uuid.uuid4().hex))  # refused again
        ledger.record(_record(tenant, 1, request_id="req-1"))  # then it went through
        ledger.record(_record(tenant, 2, request_id="req-1"))  # and was sent once more
        await _eventually(lambda: ledger.counts().written == 4, "the batch written")
    async with pool.connection() as connection:
        rows = (
            await connection.execute(
                select(usage_records.c.outcome, usage_records.c.provider)
                .where(usage_records.c.tenant == tenant)
                .order_by(usage_records.c.outcome)
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("quota_exceeded", ""),
        ("quota_exceeded", ""),
        ("succeeded", "openai"),
    ]


async def test_metrics_follow_the_counts(pool: DatabasePool) -> None:
    registry = CollectorRegistry()
    tenant = _tenant()
    async with UsageLedger(pool, batch_size=3, flush_interval=3600.0, registry=registry) as ledger:
        for number in range(4):
            ledger.record(_record(tenant, number))
        assert _metric(registry, "mainmast_llm_ledger_records_pending") == 4
        await _eventually(lambda: ledger.counts().written == 3, "a batch written")
        assert _metric(registry, "mainmast_llm_ledger_records_recorded_total") == 4
        assert _metric(registry, "mainmast_llm_ledger_records_written_total") == 3
        assert _metric(registry, "mainmast_llm_ledger_records_pending") == 1
        for reason in ("buffer_full", "closed", "shutdown", "write_failed"):
            assert (
                _metric(registry, "mainmast_llm_ledger_records_dropped_total", reason=reason) == 0
            )
    assert _metric(registry, "mainmast_llm_ledger_records_written_total") == 4
    with pytest.raises(ValueError, match="Duplicated"):
        UsageLedger(pool, registry=registry)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 0},
        {"max_error_attempts": 0},
        {"batch_size": 10, "max_pending": 5},
        {"flush_interval": 0},
        {"retry_initial_delay": 2.0, "retry_max_delay": 1.0},
    ],
)
def test_bad_options_are_refused(sqlite_url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        UsageLedger(DatabasePool(sqlite_url), **options)


# --- outages --------------------------------------------------------------------------------


class SqliteOutage:
    """Takes a SQLite database away (its folder renamed, open connections closed) and back."""

    def __init__(self, pool: DatabasePool, folder: Path) -> None:
        self._pool = pool
        self._folder = folder
        self._away = folder.with_name(folder.name + "-away")

    async def begin(self) -> None:
        self._folder.rename(self._away)
        await self._pool.engine.dispose()

    def end(self) -> None:
        self._away.rename(self._folder)


@pytest.fixture
async def sqlite_outage(tmp_path: Path) -> AsyncIterator[tuple[DatabasePool, SqliteOutage]]:
    """A migrated SQLite database whose folder a test can take away."""
    folder = tmp_path / "data"
    folder.mkdir()
    database = DatabasePool(f"sqlite+aiosqlite:///{folder / 'llm.db'}", pool_size=1)
    outage = SqliteOutage(database, folder)
    try:
        await migrate_database(database)
        yield database, outage
    finally:
        with contextlib.suppress(FileNotFoundError):
            outage.end()
        await database.close()


class TcpProxy:
    """A loopback TCP relay to PostgreSQL that a test stops (dropping every connection) and
    restarts on the same port: a database that goes away and comes back."""

    def __init__(self, target_port: int) -> None:
        self.port = 0
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._target_port
            )
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
            if upstream_writer is not None:
                upstream_writer.transport.abort()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def postgres_proxy(postgres_url: str) -> AsyncIterator[tuple[DatabasePool, TcpProxy]]:
    """A migrated PostgreSQL database reached through a proxy a test can stop."""
    url = make_url(postgres_url)
    await migrate_database(postgres_url)
    proxy = TcpProxy(url.port or 5432)
    await proxy.start()
    database = DatabasePool(
        url.set(port=proxy.port), pool_size=1, max_overflow=0, connect_timeout=2.0
    )
    try:
        yield database, proxy
    finally:
        await database.close()
        await proxy.stop()


async def _survives_an_outage(
    pool: DatabasePool, begin: Callable[[], Any], end: Callable[[], Any]
) -> None:
    """Records made before, during and after an outage are all written, exactly once."""
    tenant = _tenant()
    registry = CollectorRegistry()
    ledger = UsageLedger(
        pool,
        batch_size=10,
        flush_interval=0.02,
        retry_initial_delay=0.02,
        retry_max_delay=0.1,
        registry=registry,
    )
    with capture_logs() as logs:
        async with ledger:
            for number in range(5):
                ledger.record(_record(tenant, number))
            await _eventually(lambda: ledger.counts().written == 5, "records before the outage")
            await begin()
            for number in range(5, 30):
                ledger.record(_record(tenant, number))

            def failures() -> float:
                return _metric(
                    registry, "mainmast_llm_ledger_write_failures_total", kind="unavailable"
                )

            await _eventually(lambda: failures() >= 3, "three failed writes")
            assert ledger.counts() == LedgerCounts(recorded=30, written=5, dropped=0, pending=25)
            await end()
            await _eventually(lambda: ledger.counts().pending == 0, "the backlog written")
    assert ledger.counts() == LedgerCounts(recorded=30, written=30, dropped=0, pending=0)
    assert await _rows(pool, tenant) == 30
    events = [line["event"] for line in logs]
    assert "llm.ledger.database_unavailable" in events
    assert "llm.ledger.database_recovered" in events
    assert _dropped_lines(logs) == []


async def test_nothing_is_lost_while_sqlite_is_away(
    sqlite_outage: tuple[DatabasePool, SqliteOutage],
) -> None:
    pool, outage = sqlite_outage

    async def end() -> None:
        outage.end()

    await _survives_an_outage(pool, outage.begin, end)


@pytest.mark.postgres
async def test_nothing_is_lost_while_postgresql_is_away(
    postgres_proxy: tuple[DatabasePool, TcpProxy],
) -> None:
    pool, proxy = postgres_proxy
    await _survives_an_outage(pool, proxy.stop, proxy.start)


@pytest.mark.postgres
async def test_terminated_postgresql_connections_are_replaced(postgres_url: str) -> None:
    await migrate_database(postgres_url)
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    pool = DatabasePool(
        make_url(postgres_url).update_query_dict({"application_name": name}), pool_size=1
    )
    admin = DatabasePool(postgres_url, pool_size=1, max_overflow=0)
    tenant = _tenant()
    try:
        async with UsageLedger(pool, batch_size=5, flush_interval=0.01) as ledger:
            for number in range(5):
                ledger.record(_record(tenant, number))
            await _eventually(lambda: ledger.counts().written == 5, "the first batch")
            async with admin.connection() as connection:
                terminated = await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": name},
                )
                assert terminated.all() == [(True,)]
            for number in range(5, 10):
                ledger.record(_record(tenant, number))
            await _eventually(lambda: ledger.counts().written == 10, "the second batch")
        assert ledger.counts() == LedgerCounts(recorded=10, written=10, dropped=0, pending=0)
        assert await _rows(pool, tenant) == 10
    finally:
        await pool.close()
        await admin.close()


async def test_a_full_buffer_drops_loudly_and_counts(
    sqlite_outage: tuple[DatabasePool, SqliteOutage],
) -> None:
    pool, outage = sqlite_outage
    tenant = _tenant()
    registry = CollectorRegistry()
    ledger = UsageLedger(
        pool,
        batch_size=5,
        max_pending=10,
        flush_interval=0.01,
        retry_initial_delay=0.02,
        retry_max_delay=0.05,
        registry=registry,
    )
    await outage.begin()
    with capture_logs() as logs:
        async with ledger:
            for number in range(15):
                ledger.record(_record(tenant, number))
            assert ledger.counts() == LedgerCounts(recorded=15, written=0, dropped=5, pending=10)
            [first] = _dropped_lines(logs)
            assert (first["log_level"], first["reason"], first["dropped"]) == (
                "error",
                "buffer_full",
                1,
            )
            assert first["tenant"] == tenant
            outage.end()
            await _eventually(lambda: ledger.counts().written == 10, "the buffer written")
            ledger.record(_record(tenant, 99))  # taken again: the drops since are reported
    lines = _dropped_lines(logs)
    assert [line["dropped"] for line in lines] == [1, 4]
    assert all(line["log_level"] == "error" for line in lines)
    assert ledger.counts() == LedgerCounts(recorded=16, written=11, dropped=5, pending=0)
    assert _metric(registry, "mainmast_llm_ledger_records_dropped_total", reason="buffer_full") == 5
    assert await _rows(pool, tenant) == 11


async def test_close_gives_up_after_its_timeout_and_says_what_it_lost(
    sqlite_outage: tuple[DatabasePool, SqliteOutage],
) -> None:
    pool, outage = sqlite_outage
    registry = CollectorRegistry()
    ledger = UsageLedger(
        pool, flush_interval=0.01, retry_initial_delay=0.01, retry_max_delay=0.05, registry=registry
    )
    await outage.begin()
    await ledger.start()
    tenant = _tenant()
    for number in range(3):
        ledger.record(_record(tenant, number))
    with capture_logs() as logs:
        counts = await ledger.close(flush_timeout=0.2)
    assert counts == LedgerCounts(recorded=3, written=0, dropped=3, pending=0)
    [line] = _dropped_lines(logs)
    assert (line["log_level"], line["reason"], line["dropped"]) == ("error", "shutdown", 3)
    assert _metric(registry, "mainmast_llm_ledger_records_dropped_total", reason="shutdown") == 3


async def test_a_batch_the_database_keeps_refusing_is_dropped_after_its_attempts(
    sqlite_url: str,
) -> None:
    # No migration: the table is missing, an error no retry can fix.
    database = DatabasePool(sqlite_url)
    registry = CollectorRegistry()
    ledger = UsageLedger(
        database,
        flush_interval=0.01,
        retry_initial_delay=0.01,
        retry_max_delay=0.02,
        max_error_attempts=3,
        registry=registry,
    )
    try:
        with capture_logs() as logs:
            async with ledger:
                ledger.record(_record(_tenant()))
                await _eventually(lambda: ledger.counts().dropped == 1, "the batch dropped")
    finally:
        await database.close()
    assert _metric(registry, "mainmast_llm_ledger_write_failures_total", kind="error") == 3
    [line] = _dropped_lines(logs)
    assert (line["reason"], line["dropped"]) == ("write_failed", 1)
    assert ledger.counts() == LedgerCounts(recorded=1, written=0, dropped=1, pending=0)
