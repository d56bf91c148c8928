"""Which database errors mean "the database is unavailable", and their UnavailableError.

A failure to reach the database (refused, reset, terminated, timed out, credentials rejected,
no free pooled connection) becomes `mainmast.errors.UnavailableError` with a reason naming
the case. Everything else the database says (integrity, syntax, missing table) is the
caller's business and passes through untouched: disguising it as unavailability would send
clients into retries that can never succeed.

Messages carry the driver's own words with any password masked, never SQL or parameters
(SQLAlchemy's text includes both).
"""

from __future__ import annotations

import enum
import re
import sqlite3
from dataclasses import dataclass
from typing import Final

from sqlalchemy import exc as sa_exc

from mainmast._db_url import Backend
from mainmast.errors import UnavailableError


class DatabaseErrorReason(enum.StrEnum):
    """The `reason` of the UnavailableError raised for each way a database can be out of reach."""

    UNAVAILABLE = "DATABASE_UNAVAILABLE"
    """No connection could be made: refused, unreachable, timed out, server not accepting."""
    CONNECTION_LOST = "DATABASE_CONNECTION_LOST"
    """An open connection broke while in use (terminated by the server, reset)."""
    AUTHENTICATION_FAILED = "DATABASE_AUTHENTICATION_FAILED"
    """The server refused the credentials or the role."""
    POOL_EXHAUSTED = "DATABASE_POOL_EXHAUSTED"
    """Every pooled connection stayed checked out for the whole pool timeout."""
    BUSY = "DATABASE_BUSY"
    """SQLite stayed locked by another writer for the whole busy timeout."""
    POOL_CLOSED = "DATABASE_POOL_CLOSED"
    """The pool was closed (the process is shutting down)."""


_SUMMARIES: Final = {
    DatabaseErrorReason.UNAVAILABLE: "database unavailable",
    DatabaseErrorReason.CONNECTION_LOST: "database connection lost",
    DatabaseErrorReason.AUTHENTICATION_FAILED: "database rejected the credentials",
    DatabaseErrorReason.POOL_EXHAUSTED: "no database connection free",
    DatabaseErrorReason.BUSY: "database busy",
    DatabaseErrorReason.POOL_CLOSED: "database pool closed",
}

# Waiting briefly helps these; the others need the database back first.
_RETRY_AFTER_SECONDS: Final = {
    DatabaseErrorReason.POOL_EXHAUSTED: 1.0,
    DatabaseErrorReason.BUSY: 1.0,
    DatabaseErrorReason.CONNECTION_LOST: 1.0,
}

_AUTHENTICATION_STATES: Final = frozenset({"28000", "28P01"})
_LOST_STATES: Final = frozenset(
    {
        "57P01",  # admin_shutdown: pg_terminate_backend, smart/fast shutdown
        "57P02",  # crash_shutdown
        "57P04",  # database_dropped
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout
    }
)
_UNAVAILABLE_STATES: Final = frozenset(
    {
        "57P03",  # cannot_connect_now: starting up or in recovery
        "53300",  # too_many_connections
    }
)
_SQLITE_UNAVAILABLE_TEXT: Final = ("unable to open database file", "disk i/o error")
_SQLITE_BUSY_TEXT: Final = ("database is locked",)
# What SQLAlchemy's dialects call a dead connection without a SQLSTATE.
_CLOSED_CONNECTION_TEXT: Final = (
    "connection is closed",
    "connection was closed",
    "no active connection",
    "connection closed",
)
_URL_PASSWORD: Final = re.compile(r"(?P<head>://[^:/@\s]*:)[^@\s]+@")


@dataclass(frozen=True, slots=True)
class FailureContext:
    """What an UnavailableError may say about the pool it came from (nothing secret)."""

    backend: Backend
    password: str | None
    pool_size: int
    max_overflow: int
    pool_timeout: float

    def scrub(self, text: str) -> str:
        """`text` with the DSN's password and any URL password masked."""
        if self.password:
            text = text.replace(self.password, "***")
        text = _URL_PASSWORD.sub(r"\g<head>***@", text)
        # Errors carry UTF-8 on the wire; a driver's text may hold undecodable bytes.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    def describe(self, exc: BaseException) -> str:
        """The innermost driver error as `Type: text`, scrubbed."""
        innermost = _innermost(exc)
        detail = str(innermost).strip()
        name = type(innermost).__name__
        return self.scrub(f"{name}: {detail}" if detail else name)

    def unavailable(
        self, reason: DatabaseErrorReason, cause: BaseException | None
    ) -> UnavailableError:
        """The UnavailableError for `reason`, its message naming `cause` without secrets."""
        message = _SUMMARIES[reason]
        if cause is not None:
            message = f"{message}: {self.describe(cause)}"
        metadata: dict[str, str] = {"backend": self.backend}
        if reason is DatabaseErrorReason.POOL_EXHAUSTED:
            metadata |= {
                "pool_size": str(self.pool_size),
                "max_overflow": str(self.max_overflow),
                "pool_timeout_seconds": f"{self.pool_timeout:g}",
            }
        return UnavailableError(
            message,
            reason=reason.value,
            metadata=metadata,
            retry_after=_RETRY_AFTER_SECONDS.get(reason),
        )


def classify_connect_failure(
    exc: BaseException, driver_error: type[BaseException]
) -> DatabaseErrorReason | None:
    """The reason for an exception raised while opening a new connection, or None.

    `driver_error` is the driver's PEP 249 `Error` class. Any driver or network error at this
    point means the database cannot be reached; programming errors (a bad keyword argument,
    say) are left alone.
    """
    if isinstance(exc, OSError | TimeoutError):
        return DatabaseErrorReason.UNAVAILABLE
    if not isinstance(exc, driver_error):
        return None
    if _sqlstate(exc) in _AUTHENTICATION_STATES:
        return DatabaseErrorReason.AUTHENTICATION_FAILED
    return DatabaseErrorReason.UNAVAILABLE


def classify_failure(exc: BaseException) -> DatabaseErrorReason | None:
    """The reason for an exception raised while using a pool, or None if it is not one."""
    if isinstance(exc, sa_exc.TimeoutError):  # the pool's own timeout, not the builtin
        return DatabaseErrorReason.POOL_EXHAUSTED
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    reason = _classify_driver_error(exc.orig)
    if reason is None and exc.connection_invalidated:
        return DatabaseErrorReason.CONNECTION_LOST
    return reason


def _classify_driver_error(exc: BaseException | None) -> DatabaseErrorReason | None:
    if exc is None:
        return None
    state = _sqlstate(exc)
    if state is not None:
        return _classify_sqlstate(state)
    text = str(exc).lower()
    reason: DatabaseErrorReason | None = None
    if any(isinstance(link, sqlite3.Error) for link in _chain(exc)):
        # SQLite reports syntax errors and missing tables as OperationalError too, so only
        # these texts mean the file itself is out of reach.
        if any(marker in text for marker in _SQLITE_UNAVAILABLE_TEXT):
            reason = DatabaseErrorReason.UNAVAILABLE
        elif any(marker in text for marker in _SQLITE_BUSY_TEXT):
            reason = DatabaseErrorReason.BUSY
    if reason is None and any(marker in text for marker in _CLOSED_CONNECTION_TEXT):
        reason = DatabaseErrorReason.CONNECTION_LOST
    return reason


def _classify_sqlstate(state: str) -> DatabaseErrorReason | None:
    if state in _AUTHENTICATION_STATES:
        return DatabaseErrorReason.AUTHENTICATION_FAILED
    if state.startswith("08") or state in _LOST_STATES:
        return DatabaseErrorReason.CONNECTION_LOST
    if state in _UNAVAILABLE_STATES:
        return DatabaseErrorReason.UNAVAILABLE
    return None


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error: asyncpg's, or the one SQLAlchemy's adapter copied."""
    for link in _chain(exc):
        state = getattr(link, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from, innermost last, as a traceback would show them."""
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in links):
        links.append(current)
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return links


def _innermost(exc: BaseException) -> BaseException:
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return _chain(exc)[-1]
