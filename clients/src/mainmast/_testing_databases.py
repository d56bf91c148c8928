"""Databases for the pytest plugin: a throwaway PostgreSQL database, a SQLite file URL.

Kept apart from `mainmast.testing` so that loading the plugin, which happens in every pytest
run, imports neither asyncpg nor SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

import asyncpg
from sqlalchemy.engine import URL, make_url

_T = TypeVar("_T")
_DATABASE_NAME: Final = re.compile(r"mainmast_test_[0-9a-f]+")
# Errors that mean "no usable server there", as opposed to a server that refuses the work.
_UNREACHABLE_STATES: Final = frozenset({"28000", "28P01", "3D000", "57P03", "53300"})


class PostgresUnreachableError(Exception):
    """PostgreSQL could not be reached at the admin URL (message has no password)."""


def new_database_name() -> str:
    """A fresh, unguessable `mainmast_test_<hex>` database name."""
    return f"mainmast_test_{secrets.token_hex(6)}"


def safe_url(url: str) -> str:
    """`url` with its password masked (the text itself if it is not a URL)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a bad URL is reported by the connect, not here
        return "<unparsable URL>"


def database_url(admin_url: str, name: str) -> str:
    """The admin URL pointed at database `name`, password kept (tests connect with it)."""
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def sqlite_file_url(path: Path) -> str:
    """The aiosqlite URL of the SQLite file at `path`."""
    return URL.create("sqlite+aiosqlite", database=str(path.absolute())).render_as_string()


def create_database(admin_url: str, name: str, *, timeout: float) -> None:
    """Create database `name`; PostgresUnreachableError if no server answers usefully."""
    _require_test_name(name)
    _run_in_thread(lambda: _execute(admin_url, f'CREATE DATABASE "{name}"', timeout))


def drop_database(admin_url: str, name: str, *, timeout: float) -> None:
    """Drop database `name`, disconnecting whoever is still connected to it."""
    _require_test_name(name)
    _run_in_thread(
        lambda: _execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout)
    )


def _require_test_name(name: str) -> None:
    # The name is spliced into SQL (identifiers cannot be parameters): only ours may pass.
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"not a test database name: {name!r}")


async def _execute(admin_url: str, statement: str, limit_seconds: float) -> None:
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    password = make_url(admin_url).password
    try:
        connection = await asyncpg.connect(dsn, timeout=limit_seconds)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate not in _UNREACHABLE_STATES:
            raise
        detail = f"{type(exc).__name__}: {exc}"
        if password:
            detail = detail.replace(password, "***")
        raise PostgresUnreachableError(detail) from exc
    try:
        await connection.execute(statement, timeout=limit_seconds)
    finally:
        await connection.close(timeout=limit_seconds)


def _run_in_thread(work: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on a loop of its own, in a thread of its own.

    Fixtures of the plugin run while pytest-asyncio may have an event loop set on this
    thread; `asyncio.run` here would replace and then unset it.
    """

    async def main() -> _T:
        return await work()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mainmast-testing") as executor:
        return executor.submit(lambda: asyncio.run(main())).result()
