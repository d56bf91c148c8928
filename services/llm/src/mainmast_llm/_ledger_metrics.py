"""The usage ledger's Prometheus metrics, registered on a registry the service passes in."""

from __future__ import annotations

import enum
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class DropReason(enum.StrEnum):
    """Why records were dropped instead of written (the `reason` label)."""

    BUFFER_FULL = "buffer_full"
    """The buffer held `max_pending` records already (the database was down too long)."""
    CLOSED = "closed"
    """Recorded after `close()`."""
    SHUTDOWN = "shutdown"
    """Still pending when `close()` ran out of time."""
    WRITE_FAILED = "write_failed"
    """The database kept refusing the batch with an error other than unavailability."""


class WriteFailure(enum.StrEnum):
    """Why a batch's INSERT failed (the `kind` label)."""

    UNAVAILABLE = "unavailable"
    """The database could not be reached; the batch is retried until it can."""
    ERROR = "error"
    """Any other error; the batch is retried a few times, then dropped."""


class LedgerMetrics:
    """Counters of records recorded, written and dropped, failed writes, and a pending gauge.

    Registering twice on one registry raises ValueError (one ledger per registry).
    """

    def __init__(self, registry: CollectorRegistry, pending: Callable[[], float]) -> None:
        """Register the family on `registry`; the gauge reads `pending()` when scraped."""
        self.recorded = Counter(
            "mainmast_llm_ledger_records_recorded",
            "Usage records handed to the ledger.",
            registry=registry,
        )
        self.written = Counter(
            "mainmast_llm_ledger_records_written",
            "Usage records committed to the database.",
            registry=registry,
        )
        self.dropped = Counter(
            "mainmast_llm_ledger_records_dropped",
            "Usage records lost, by reason.",
            ["reason"],
            registry=registry,
        )
        self.write_failures = Counter(
            "mainmast_llm_ledger_write_failures",
            "Batch INSERTs that failed and will be retried or dropped, by kind.",
            ["kind"],
            registry=registry,
        )
        self.pending = Gauge(
            "mainmast_llm_ledger_records_pending",
            "Usage records buffered or being written.",
            registry=registry,
        )
        self.pending.set_function(pending)
        # Every label value shows from the start, at 0, so alerts need no absent() clause.
        for reason in DropReason:
            self.dropped.labels(reason=reason.value)
        for kind in WriteFailure:
            self.write_failures.labels(kind=kind.value)
