"""The pytest plugin of mainmast: loaded by every pytest run where mainmast is installed.

Registered as the `pytest11` entry point `mainmast`; importing it does nothing else and pulls
in no database driver. Fixtures:

`postgres_url` (session scope)
    The URL of a fresh database `mainmast_test_<random>`, created for the test run on the
    server at `MAINMAST_TEST_POSTGRES_URL` (default
    `postgresql://postgres@127.0.0.1:5432/postgres`; the user needs CREATEDB) and dropped
    at the end with `DROP DATABASE ... WITH (FORCE)`. The URL keeps the scheme of the server
    URL, so `DatabasePool(postgres_url)` runs it on asyncpg. When no server answers, the
    tests that use it are skipped with the reason, except under `CI=true`, where they fail:
    a CI run must not pass by skipping its database tests.

`fresh_postgres_url` (function scope)
    The URL of an empty database of this test's own, on the same server as `postgres_url`,
    dropped after the test. For tests whose state must not meet other tests' state (a
    service's first start on an empty database, its signing keys), at the cost of a
    CREATE DATABASE per test.

`fresh_database_url` (function scope, parametrised `sqlite` / `postgresql`)
    The test runs twice: on a SQLite file of its own and on a `fresh_postgres_url` database
    (that case carries the `postgres` marker).

`sqlite_url` (function scope)
    The aiosqlite URL of a SQLite file in the test's `tmp_path` (created on first connect).

The plugin also registers the `postgres` marker, for tests that need the server.

Helpers:

`start_service_process(argv, env=...)` (async context manager) -> `ServiceProcess`
    Runs a service as its own process, as in production, reads its JSON log lines
    (`await proc.wait_for_line("serving")`, `await proc.address()`), and kills it on the
    way out if it still runs; `proc.send_signal(...)`, `await proc.exit_code()`.

`await health_status(channel, service)`, `await list_services(channel)`
    What a server's grpc.health.v1 service and server reflection answer.

`schema_differences(connection, metadata, tables=..., version_table=...)`, `table_names`,
`sqlite_table_names(path)`
    For a service's migration tests: how the migrated schema differs from its models.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from mainmast._testing_grpc import health_status, list_services
from mainmast._testing_migrations import schema_differences, sqlite_table_names, table_names
from mainmast._testing_processes import ServiceProcess, start_service_process

__all__ = [
    "ServiceProcess",
    "fresh_database_url",
    "fresh_postgres_url",
    "health_status",
    "list_services",
    "postgres_url",
    "schema_differences",
    "sqlite_table_names",
    "sqlite_url",
    "start_service_process",
    "table_names",
]

POSTGRES_URL_ENV: Final = "MAINMAST_TEST_POSTGRES_URL"
"""Environment variable with the URL of the PostgreSQL server the tests may use."""

DEFAULT_POSTGRES_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The server used when `MAINMAST_TEST_POSTGRES_URL` is unset."""

_ADMIN_TIMEOUT_SECONDS: Final = 10.0
_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})


def pytest_configure(config: pytest.Config) -> None:
    """Register the `postgres` marker, so `--strict-markers` projects can use it."""
    config.addinivalue_line(
        "markers", f"postgres: needs PostgreSQL at {POSTGRES_URL_ENV} (the postgres_url fixture)"
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run; dropped when the run ends."""
    from mainmast import _testing_databases as databases  # noqa: PLC0415 - keeps the plugin light

    admin_url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    name = databases.new_database_name()
    try:
        databases.create_database(admin_url, name, timeout=_ADMIN_TIMEOUT_SECONDS)
    except databases.PostgresUnreachableError as exc:
        message = (
            f"PostgreSQL is not reachable at {databases.safe_url(admin_url)} ({exc}); start it "
            f"or set {POSTGRES_URL_ENV}"
        )
        if running_in_ci():
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    try:
        yield databases.database_url(admin_url, name)
    finally:
        databases.drop_database(admin_url, name, timeout=_ADMIN_TIMEOUT_SECONDS)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own; dropped after the test."""
    from mainmast import _testing_databases as databases  # noqa: PLC0415 - keeps the plugin light

    name = databases.new_database_name()
    databases.create_database(postgres_url, name, timeout=_ADMIN_TIMEOUT_SECONDS)
    try:
        yield databases.database_url(postgres_url, name)
    finally:
        databases.drop_database(postgres_url, name, timeout=_ADMIN_TIMEOUT_SECONDS)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_database_url(request: pytest.FixtureRequest) -> str:
    """An empty database of this test's own: a SQLite file, then a PostgreSQL database."""
    fixture = "sqlite_url" if request.param == "sqlite" else "fresh_postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite database file in this test's `tmp_path`."""
    from mainmast import _testing_databases as databases  # noqa: PLC0415 - keeps the plugin light

    return databases.sqlite_file_url(tmp_path / "test.db")


def running_in_ci() -> bool:
    """Whether the `CI` environment variable says this is a CI run (true, 1, yes, on)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE_WORDS
