"""The pytest plugin: postgres_url makes and drops a database, skips or fails without a server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mainmast.db import DatabasePool
from mainmast.testing import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV

pytest_plugins = ["pytester"]

PASSWORD = "hunter2-pw-4711"
INNER_TEST_USING_POSTGRES = """
import asyncio
from pathlib import Path

import asyncpg


def test_database_is_fresh(postgres_url):
    async def inspect():
        connection = await asyncpg.connect(postgres_url)
        try:
            return (
                await connection.fetchval("SELECT current_database()"),
                await connection.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                ),
            )
        finally:
            await connection.close()

    name, tables = asyncio.run(inspect())
    assert name.startswith("mainmast_test_")
    assert tables == 0
    Path("database_name.txt").write_text(name)
"""


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def admin_url() -> str:
    return os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


@pytest.mark.postgres
async def test_postgres_url_is_a_fresh_database_dropped_after_the_run(
    pytester: pytest.Pytester, postgres_url: str
) -> None:
    pytester.makepyfile(INNER_TEST_USING_POSTGRES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    name = (pytester.path / "database_name.txt").read_text()
    assert name != make_url(postgres_url).database  # not the outer run's database either
    admin = await asyncpg.connect(admin_url())
    try:
        exists = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    assert exists == 0


def test_postgres_url_skips_without_a_server_outside_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv(
        POSTGRES_URL_ENV, f"postgresql://app:{PASSWORD}@127.0.0.1:{closed_port}/postgres"
    )
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile("def test_needs_postgres(postgres_url):\n    raise AssertionError\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"*PostgreSQL is not reachable at postgresql://app:***@127.0.0.1:{closed_port}/postgres*"]
    )
    assert PASSWORD not in result.stdout.str() + result.stderr.str()


def test_postgres_url_fails_without_a_server_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv(
        POSTGRES_URL_ENV, f"postgresql://app:{PASSWORD}@127.0.0.1:{closed_port}/postgres"
    )
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile("def test_needs_postgres(postgres_url):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*PostgreSQL is not reachable*CI=true: PostgreSQL tests must run*"]
    )
    assert PASSWORD not in result.stdout.str() + result.stderr.str()


def test_the_postgres_marker_is_registered_for_strict_projects(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.postgres\ndef test_marked():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)


async def test_sqlite_url_is_a_working_file_in_tmp_path(sqlite_url: str, tmp_path: Path) -> None:
    database = Path(str(make_url(sqlite_url).database))
    assert database.parent == tmp_path
    async with DatabasePool(sqlite_url) as pool, pool.session() as session:
        await session.execute(sa.text("CREATE TABLE t (id INTEGER)"))
    assert await asyncio.to_thread(database.is_file)


def test_loading_the_plugin_imports_no_database_code() -> None:
    probe = (
        "import sys, mainmast.testing\n"
        "heavy = {'sqlalchemy', 'asyncpg', 'aiosqlite', 'alembic'}\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in heavy))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert output.stdout.strip() == "[]"
