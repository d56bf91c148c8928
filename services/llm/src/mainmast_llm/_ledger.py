"""The usage ledger's writer: records calls off the call path, in batches, through outages.

    ledger = UsageLedger(pool, registry=metrics_registry)
    await ledger.start()
    ledger.record(UsageRecord.priced(prices, tenant=..., ...))   # never blocks, never raises
    ...
    await ledger.close(flush_timeout=10.0)                       # on SIGTERM: flush what it can

`record()` appends to a bounded buffer. A background task writes a batch when
`batch_size` records wait or `flush_interval` seconds after the oldest arrived, whichever
comes first, with one INSERT per batch. While the database is unavailable the batch is
kept and retried with exponential backoff and jitter; records keep piling up behind it
until the buffer holds `max_pending`, and past that each new record is dropped, counted
and reported at ERROR. Rows are keyed by record id and written with "skip on conflict",
so a batch retried after a commit of unknown outcome is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from prometheus_client import CollectorRegistry
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from mainmast.db import DatabasePool
from mainmast.errors import UnavailableError
from mainmast.logging import get_logger

from ._ledger_metrics import DropReason, LedgerMetrics, WriteFailure
from ._ledger_schema import record_row, usage_records
from ._usage import UsageRecord

# While records are being dropped, an ERROR line at least this often (the first at once).
_DROP_LOG_INTERVAL_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    """What the ledger did with the records handed to it.

    recorded = written + dropped + pending, always.
    """

    recorded: int
    """Records handed to `record()`."""
    written: int
    """Records committed to the database."""
    dropped: int
    """Records lost (buffer full, recorded after close, unwritable, or left at close)."""
    pending: int
    """Records buffered or being written."""


class UsageLedger:
    """Writes `UsageRecord`s to `llm_usage_records` in batches, never in the caller's way.

    `batch_size` records make a batch (one INSERT); a smaller batch is written
    `flush_interval` seconds after its oldest record arrived. At most `max_pending` records
    wait (the one being written included); beyond that, new ones are dropped loudly. A
    failed batch is retried after `retry_initial_delay` seconds, doubling up to
    `retry_max_delay`; failures other than an unavailable database are retried
    `max_error_attempts` times in all, then the batch is dropped. Metrics go to `registry`
    (a private one when None).
    """

    def __init__(
        self,
        pool: DatabasePool,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_pending: int = 100_000,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        max_error_attempts: int = 5,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """Set up the buffer and register the metrics; nothing runs until `start()`."""
        if batch_size < 1 or max_error_attempts < 1:
            raise ValueError("batch_size and max_error_attempts must be at least 1")
        if max_pending < batch_size:
            raise ValueError(f"max_pending must be at least batch_size ({batch_size})")
        if not (flush_interval > 0 and retry_initial_delay > 0):
            raise ValueError("flush_interval and retry_initial_delay must be greater than 0")
        if retry_max_delay < retry_initial_delay:
            raise ValueError("retry_max_delay must be at least retry_initial_delay")
        self._pool = pool
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._retry_initial_delay = retry_initial_delay
        self._retry_max_delay = retry_max_delay
        self._max_error_attempts = max_error_attempts
        self._insert = _skip_conflicts_insert(pool.backend)
        self._logger = get_logger("mainmast_llm.ledger")
        # (arrival on the monotonic clock, record), oldest first.
        self._buffer: deque[tuple[float, UsageRecord]] = deque()
        self._in_flight = 0
        self._recorded = 0
        self._written = 0
        self._dropped = 0
        self._unreported_full_drops = 0
        self._last_full_log: float | None = None
        self._wake = asyncio.Event()
        self._close_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._metrics = LedgerMetrics(
            registry if registry is not None else CollectorRegistry(), self._pending
        )

    def counts(self) -> LedgerCounts:
        """The counts so far."""
        return LedgerCounts(
            recorded=self._recorded,
            written=self._written,
            dropped=self._dropped,
            pending=self._pending(),
        )

    def record(self, record: UsageRecord) -> None:
        """Queue `record` for writing; returns at once and never raises.

        When the buffer is full or the ledger is closed, the record is dropped, counted and
        reported at ERROR.
        """
        try:
            self._recorded += 1
            self._metrics.recorded.inc()
            if self._closed:
                self._drop(1, DropReason.CLOSED, record)
                return
            if self._pending() >= self._max_pending:
                self._drop(1, DropReason.BUFFER_FULL, record)
                return
            if self._last_full_log is not None:
                self._end_of_drops()
            self._buffer.append((time.monotonic(), record))
            # The writer waits for the first record (to time its batch) and for a full one.
            if len(self._buffer) == 1 or len(self._buffer) >= self._batch_size:
                self._wake.set()
        except Exception:  # the call path must never fail because of its ledger
            with contextlib.suppress(Exception):
                self._logger.exception("llm.ledger.record_failed")

    async def start(self) -> None:
        """Start the background writer (records made before are written too)."""
        if self._closed:
            raise RuntimeError("this UsageLedger is closed; make a new one")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mainmast-llm-ledger")

    async def close(self, *, flush_timeout: float = 10.0) -> LedgerCounts:
        """Stop taking records and write the pending ones, for at most `flush_timeout` seconds.

        What is still pending then is dropped, counted and reported at ERROR. Returns the
        final counts; closing again only returns them.
        """
        if self._closed:
            return self.counts()
        self._closed = True
        self._close_requested.set()
        self._wake.set()
        task = self._task
        if task is None and self._buffer:
            task = self._task = asyncio.create_task(self._run(), name="mainmast-llm-ledger")
        if task is not None:
            try:
                done, _ = await asyncio.wait([task], timeout=flush_timeout)
            except asyncio.CancelledError:
                # Whoever closes us gave up waiting: the writer must not outlive the ledger.
                task.cancel()
                raise
            if not done:
                task.cancel()
                await asyncio.wait([task])
        left = self._pending()
        if left:
            self._buffer.clear()
            self._in_flight = 0
            self._drop(left, DropReason.SHUTDOWN, None)
        if self._last_full_log is not None:
            self._end_of_drops()
        counts = self.counts()
        self._logger.info(
            "llm.ledger.closed",
            recorded=counts.recorded,
            written=counts.written,
            dropped=counts.dropped,
        )
        return counts

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

    def _pending(self) -> int:
        return len(self._buffer) + self._in_flight

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self._buffer:
                if self._close_requested.is_set():
                    return
                await self._wake.wait()
                continue
            await self._wait_for_batch()
            try:
                await self._write_next_batch()
            except Exception:  # the writer must outlive any one failure
                self._logger.exception("llm.ledger.writer_failed", pending=self._pending())
                await self._pause(self._retry_initial_delay)

    async def _wait_for_batch(self) -> None:
        """Until a batch is full, the oldest record is `flush_interval` old, or close."""
        remaining = self._buffer[0][0] + self._flush_interval - time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, remaining)):
                while len(self._buffer) < self._batch_size and not self._close_requested.is_set():
                    self._wake.clear()
                    await self._wake.wait()

    async def _write_next_batch(self) -> None:
        count = min(self._batch_size, len(self._buffer))
        batch = [self._buffer.popleft()[1] for _ in range(count)]
        self._in_flight = count
        try:
            await self._write_until_done(batch)
        except Exception:
            self._in_flight = 0
            self._drop(count, DropReason.WRITE_FAILED, None)
            raise
        # Not in a `finally`: a batch cancelled by close() stays pending, so close() counts
        # it among the records it lost.
        self._in_flight = 0

    async def _write_until_done(self, batch: list[UsageRecord]) -> None:
        rows = [record_row(record) for record in batch]
        delay = self._retry_initial_delay
        errors = 0
        outage_started: float | None = None
        while True:
            try:
                async with self._pool.connection() as connection:
                    await connection.execute(self._insert, rows)
            except UnavailableError as exc:
                self._metrics.write_failures.labels(kind=WriteFailure.UNAVAILABLE.value).inc()
                if outage_started is None:
                    outage_started = time.monotonic()
                self._logger.warning(
                    "llm.ledger.database_unavailable",
                    reason=exc.reason,
                    batch=len(batch),
                    pending=self._pending(),
                    retry_in_seconds=round(delay, 3),
                )
            except Exception:
                errors += 1
                self._metrics.write_failures.labels(kind=WriteFailure.ERROR.value).inc()
                if errors >= self._max_error_attempts:
                    self._logger.exception(
                        "llm.ledger.batch_unwritable", batch=len(batch), attempts=errors
                    )
                    self._drop(len(batch), DropReason.WRITE_FAILED, None)
                    return
                self._logger.exception(
                    "llm.ledger.write_failed",
                    batch=len(batch),
                    attempt=errors,
                    retry_in_seconds=round(delay, 3),
                )
            else:
                self._written += len(batch)
                self._metrics.written.inc(len(batch))
                if outage_started is not None:
                    self._logger.info(
                        "llm.ledger.database_recovered",
                        outage_seconds=round(time.monotonic() - outage_started, 3),
                        pending=self._pending(),
                    )
                return
            # Jitter spreads the replicas' retries after a shared outage.
            await self._pause(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret
            delay = min(delay * 2, self._retry_max_delay)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but stop at once when close() is called (to try flushing right away)."""
        if self._close_requested.is_set():
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._close_requested.wait()

    def _drop(self, count: int, reason: DropReason, record: UsageRecord | None) -> None:
        self._dropped += count
        self._metrics.dropped.labels(reason=reason.value).inc(count)
        if reason is DropReason.BUFFER_FULL:
            # A full buffer drops every record until the database is back: one line at once,
            # then one every few seconds with the count since, so the log stays readable.
            self._unreported_full_drops += count
            now = time.monotonic()
            if (
                self._last_full_log is not None
                and now - self._last_full_log < _DROP_LOG_INTERVAL_SECONDS
            ):
                return
            self._last_full_log = now
            count, self._unreported_full_drops = self._unreported_full_drops, 0
        self._log_drops(count, reason, record)

    def _end_of_drops(self) -> None:
        """Report the drops of a full buffer not yet reported, now that it takes records again."""
        if self._unreported_full_drops:
            self._log_drops(self._unreported_full_drops, DropReason.BUFFER_FULL, None)
        self._unreported_full_drops = 0
        self._last_full_log = None

    def _log_drops(self, count: int, reason: DropReason, record: UsageRecord | None) -> None:
        self._logger.error(
            "llm.ledger.records_dropped",
            reason=reason.value,
            dropped=count,
            dropped_total=self._dropped,
            max_pending=self._max_pending,
            tenant=None if record is None else record.tenant,
            request_id=None if record is None else record.request_id,
        )


def _skip_conflicts_insert(backend: str) -> Insert:
    """INSERT into the ledger that skips rows already there (same record, or a success
    already recorded under the same request id)."""
    if backend == "postgresql":
        return postgresql.insert(usage_records).on_conflict_do_nothing()
    if backend == "sqlite":
        return sqlite.insert(usage_records).on_conflict_do_nothing()
    raise ValueError(f"the usage ledger supports PostgreSQL and SQLite, not {backend!r}")
