"""`mainmast-auth migrate`, run as its own process as an operator would run it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from mainmast.db import DatabasePool
from mainmast_auth._store_policies import policy_version

_RUN_CLI = "from mainmast_auth.cli import main; main()"


async def _migrate(env: dict[str, str], *arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN_CLI,
        "migrate",
        *arguments,
        env={**os.environ, "MAINMAST_AUTH_LOG_JSON": "true", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
def database_url(fresh_database_url: str) -> str:
    """An empty database of the test's own on each backend: starting the service there
    creates its signing key, which must not meet the keys other tests keep in the run's
    shared database."""
    return fresh_database_url


async def test_migrate_brings_the_database_up_to_date_and_can_run_again(database_url: str) -> None:
    env = {"MAINMAST_AUTH_DATABASE_URL": database_url}
    first = await _migrate(env)
    second = await _migrate(env)
    assert first[0] == 0, first[2]
    assert second[0] == 0, second[2]
    assert "auth database at revision 0002" in first[1]
    assert "auth database at revision 0002" in second[1]
    pool = DatabasePool(database_url, pool_size=1, max_overflow=0)
    try:
        async with pool.session() as session:
            assert await policy_version(session) >= 0
    finally:
        await pool.close()


async def test_migrate_without_a_database_url_uses_the_data_folder(tmp_path: Path) -> None:
    code, stdout, stderr = await _migrate(
        {"MAINMAST_DATA_DIR": str(tmp_path), "MAINMAST_AUTH_DATABASE_URL": ""}
    )
    assert code == 0, stderr
    assert "revision 0002" in stdout
    assert (tmp_path / "auth.db").is_file()


async def test_an_unusable_database_url_is_a_usage_error() -> None:
    code, _, stderr = await _migrate({"MAINMAST_AUTH_DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert code == 2
    assert "unsupported database backend" in stderr
    assert "hunter2" not in stderr


async def test_an_unreachable_database_fails_without_showing_its_password() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    code, stdout, stderr = await _migrate(
        {"MAINMAST_AUTH_DATABASE_URL": "postgresql://auth:hunter2@127.0.0.1:1/auth"}
    )
    assert code == 1
    assert "database unavailable" in stderr
    assert "hunter2" not in stdout + stderr
