"""DatabasePool: an async SQLAlchemy engine with pre-ping, typed failures and a health watch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, NullPool, QueuePool

from mainmast._db_errors import (
    DatabaseErrorReason,
    FailureContext,
    classify_connect_failure,
    classify_failure,
)
from mainmast._db_health import PoolHealth, PoolState, log_state_change
from mainmast._db_url import Backend, DatabaseTarget, default_sqlite_url, normalize_database_url
from mainmast.errors import UnavailableError
from mainmast.logging import get_logger

# Waits up to this long for a competing SQLite writer before "database is locked".
_SQLITE_BUSY_TIMEOUT_MS: Final = 5000
# Early checks (asked for by failing sessions) come no closer together than this.
_MIN_CHECK_GAP_SECONDS: Final = 1.0


class DatabasePool:
    """A pool of database connections for one service, with health checks.

    `url` is any PostgreSQL URL (`postgres://`, `postgresql://`, `postgresql+asyncpg://`; it
    runs on asyncpg, libpq's `sslmode`, `connect_timeout`, `application_name` and `options`
    are understood) or a SQLite file URL (it runs on aiosqlite with WAL, a busy timeout and
    foreign keys on). None means `default_sqlite_url()`, a file in the data folder.

    The pool lends at most `pool_size + max_overflow` connections; a caller waits up to
    `pool_timeout` seconds for one. Each connection is pinged as it is checked out, so
    connections the server dropped are replaced without a restart. Connection failures
    raise `mainmast.errors.UnavailableError` with a `DatabaseErrorReason`; other database
    errors (integrity, syntax) pass through as SQLAlchemy raised them.

    `start()` (or `async with pool`) runs a health check every `health_check_interval`
    seconds; `health()` returns the last snapshot and `check_health()` takes a new one.
    Sessions work without `start()`; `close()` releases everything.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        pool_size: int = 20,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
        health_check_interval: float = 30.0,
        connect_timeout: float = 10.0,
        pool_recycle: float | None = None,
        echo: bool = False,
        connect_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Build the engine; no connection is made until one is needed (a SQLite file's folder
        is created now).

        `connect_timeout` bounds each new connection and each health probe (seconds).
        `pool_recycle` replaces connections older than that many seconds (None: never).
        `connect_args` go to the driver's connect as they are, over the URL's.
        """
        _require_positive(pool_size=pool_size, pool_timeout=pool_timeout)
        _require_positive(health_check_interval=health_check_interval)
        _require_positive(connect_timeout=connect_timeout)
        if max_overflow < 0:
            raise ValueError(f"max_overflow must be 0 or more, got {max_overflow}")
        if pool_recycle is not None:
            _require_positive(pool_recycle=pool_recycle)
        self._target = normalize_database_url(
            default_sqlite_url() if url is None else url, connect_timeout=connect_timeout
        )
        self._failures = FailureContext(
            backend=self._target.backend,
            password=self._target.url.password,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
        )
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._health_check_interval = health_check_interval
        self._connect_timeout = connect_timeout
        self._driver_args = {**self._target.connect_args, **(connect_args or {})}
        _prepare_sqlite_folder(self._target)
        self._engine = self._build_engine(
            poolclass=AsyncAdaptedQueuePool,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_recycle=-1 if pool_recycle is None else pool_recycle,
            echo=echo,
        )
        # The health probe opens a connection of its own each time: it must answer even when
        # every pooled connection is lent out, and must not take one from a waiting caller.
        self._probe_engine = self._build_engine(poolclass=NullPool)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._logger = get_logger("mainmast.db")
        self._acquiring = 0
        self._closed = False
        self._started = False
        self._health_task: asyncio.Task[None] | None = None
        self._check_lock = asyncio.Lock()
        self._check_requested = asyncio.Event()
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._health = PoolHealth(
            state=PoolState.UNKNOWN,
            checked_out=0,
            size=pool_size,
            max_overflow=max_overflow,
            overflow=0,
            waiting=0,
            last_error=None,
            last_error_at=None,
            last_check=None,
        )

    def __repr__(self) -> str:
        return (
            f"DatabasePool({self._target.safe_url!r}, pool_size={self._pool_size}, "
            f"max_overflow={self._max_overflow})"
        )

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine, for Core queries and `run_sync`."""
        return self._engine

    @property
    def url(self) -> URL:
        """The normalised URL; `str()` of it masks the password."""
        return self._target.url

    @property
    def backend(self) -> Backend:
        """Which server is at the other end: postgresql or sqlite."""
        return self._target.backend

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Open an ORM session: commit when the block ends, roll back when it raises.

        The session takes its connection as it opens, waiting up to `pool_timeout` seconds.
        Connection failures inside the block or at commit are raised as UnavailableError.
        """
        self._require_open()
        async with self._failures_as_unavailable(), self._sessions() as session:
            try:
                self._acquiring += 1
                try:
                    await session.connection()
                finally:
                    self._acquiring -= 1
                yield session
                await session.commit()
            except BaseException:
                await self._roll_back_quietly(session)
                raise

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """Open a Core connection in a transaction: commit at the end, roll back on error.

        Waiting and failures behave as in `session()`.
        """
        self._require_open()
        async with self._failures_as_unavailable():
            connection = self._engine.connect()
            self._acquiring += 1
            try:
                await connection.start()
            finally:
                self._acquiring -= 1
            try:
                async with connection.begin():
                    yield connection
            finally:
                # Shielded as SQLAlchemy's own context manager does: a cancelled caller must
                # still hand its connection back.
                await asyncio.shield(connection.close())

    def health(self) -> PoolHealth:
        """The snapshot of the last health check (state UNKNOWN before the first)."""
        return self._health

    async def check_health(self) -> PoolHealth:
        """Check now: probe the database with a connection of its own, then read the pool."""
        async with self._check_lock:
            probe_error = await self._probe()
            now = datetime.now(UTC)
            pool = self._queue_pool()
            checked_out = pool.checkedout()
            waiting = self._acquiring
            if probe_error is not None:
                state = PoolState.DOWN
                self._last_error, self._last_error_at = probe_error, now
            elif checked_out >= self._pool_size + self._max_overflow and waiting > 0:
                state = PoolState.SATURATED
            else:
                state = PoolState.HEALTHY
            previous = self._health.state
            self._health = PoolHealth(
                state=state,
                checked_out=checked_out,
                size=self._pool_size,
                max_overflow=self._max_overflow,
                # QueuePool counts overflow from -pool_size until the pool is full.
                overflow=max(0, pool.overflow()),
                waiting=waiting,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
                last_check=now,
            )
            if state is not previous:
                log_state_change(self._logger, previous, self._health, self._target.safe_url)
            return self._health

    async def start(self) -> None:
        """Check health once, then keep checking in the background until `close()`."""
        if self._closed:
            raise RuntimeError("this DatabasePool is closed; make a new one")
        if self._started:
            return
        self._started = True
        await self.check_health()
        self._health_task = asyncio.create_task(
            self._watch_health(), name=f"mainmast-db-health {self._target.safe_url}"
        )

    async def close(self) -> None:
        """Stop the health checks and close every connection; later sessions raise."""
        self._closed = True
        task, self._health_task = self._health_task, None
        if task is not None:
            # Cancel only between checks: a probe cancelled while its driver connects in a
            # thread (aiosqlite) leaves that thread to report to a loop that may be gone.
            # A probe is bounded by connect_timeout, so waiting for it is bounded too.
            async with self._check_lock:
                task.cancel()
            # wait() rather than awaiting the task: a cancellation of close() itself must
            # still propagate, and the task's own CancelledError must not.
            await asyncio.wait([task])
        await self._engine.dispose()
        await self._probe_engine.dispose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _build_engine(self, **options: Any) -> AsyncEngine:
        # hide_parameters: statement parameters (password hashes, token digests) never
        # appear in SQLAlchemy's log lines or in the text of its exceptions.
        engine = create_async_engine(
            self._target.url, connect_args=self._driver_args, hide_parameters=True, **options
        )
        event.listen(engine.sync_engine, "do_connect", self._connect)
        if self._target.backend == "sqlite":
            event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        return engine

    def _connect(
        self,
        dialect: Dialect,
        connection_record: ConnectionPoolEntry,
        cargs: tuple[Any, ...],
        cparams: dict[str, Any],
    ) -> Any:
        """Make a driver connection as SQLAlchemy would, raising failures as UnavailableError.

        Failures to connect come out of SQLAlchemy unwrapped (a bare ConnectionRefusedError,
        say), indistinguishable later from the caller's own errors, so they are typed here.
        """
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            driver_error: type[BaseException] = dialect.loaded_dbapi.Error
            reason = classify_connect_failure(exc, driver_error)
            if reason is None:
                raise
            raise self._failures.unavailable(reason, exc) from exc

    def _require_open(self) -> None:
        if self._closed:
            raise self._failures.unavailable(DatabaseErrorReason.POOL_CLOSED, None)

    @contextlib.asynccontextmanager
    async def _failures_as_unavailable(self) -> AsyncIterator[None]:
        try:
            yield
        except BaseException as exc:
            failure = self._as_unavailable(exc)
            if failure is None:
                raise
            raise failure from exc

    async def _roll_back_quietly(self, session: AsyncSession) -> None:
        try:
            await session.rollback()
        except Exception as exc:  # noqa: BLE001 - the original error is what the caller needs
            self._logger.debug("db.rollback_failed", error=self._failures.describe(exc))

    def _as_unavailable(self, exc: BaseException) -> UnavailableError | None:
        if isinstance(exc, UnavailableError):
            # Raised by _connect already; still a sign the database may be down.
            self._note_failure(exc)
            return None
        reason = classify_failure(exc)
        if reason is None:
            return None
        self._note_failure(exc)
        return self._failures.unavailable(reason, exc)

    def _note_failure(self, exc: BaseException) -> None:
        self._last_error = self._failures.describe(exc)
        self._last_error_at = datetime.now(UTC)
        self._check_requested.set()

    async def _probe(self) -> str | None:
        """None when a fresh connection answers `SELECT 1`, else what went wrong."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                async with self._probe_engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except TimeoutError:
            return f"TimeoutError: no answer to SELECT 1 within {self._connect_timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - whatever stops SELECT 1 means "down"
            return self._failures.describe(exc)
        return None

    async def _watch_health(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = loop.time() + self._health_check_interval
            await asyncio.sleep(min(_MIN_CHECK_GAP_SECONDS, self._health_check_interval))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._check_requested.wait()
            self._check_requested.clear()
            try:
                await self.check_health()
            except Exception as exc:  # the watch must outlive any one check
                self._logger.exception("db.health.check_failed", error=self._failures.describe(exc))

    def _queue_pool(self) -> QueuePool:
        pool = self._engine.pool
        if not isinstance(pool, QueuePool):  # pragma: no cover - the engine is built with one
            raise TypeError(f"expected a QueuePool, got {type(pool).__name__}")
        return pool


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be greater than 0, got {value!r}")


def _prepare_sqlite_folder(target: DatabaseTarget) -> None:
    path = target.sqlite_path
    if path is not None:
        # A folder that cannot be made shows up as "database down" on the first connection,
        # with SQLite's own message; failing here would hide which path was wrong.
        with contextlib.suppress(OSError):
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite_connection(
    dbapi_connection: Any, connection_record: ConnectionPoolEntry
) -> None:
    """WAL (readers never block the writer), a busy timeout, and enforced foreign keys."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # With WAL, NORMAL is durable across application crashes and much faster than FULL.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
