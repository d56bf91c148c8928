"""The first platform admin: created at startup from settings (idempotently), or a hint."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pydantic
import pytest
from pydantic import SecretStr

from mainmast.db import DatabasePool
from mainmast.errors import FailedPreconditionError
from mainmast_auth._bootstrap import bootstrap_on_start, has_platform_admin
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._store_directory import create_tenant, create_user, find_user
from mainmast_auth._store_migrations import migrate_database
from mainmast_auth.settings import AuthSettings

_PASSWORD = "Correct-Horse-Battery-7"
_BOOTSTRAP_ENV = {
    "MAINMAST_AUTH_BOOTSTRAP_ADMIN_TENANT": "acme",
    "MAINMAST_AUTH_BOOTSTRAP_ADMIN_USERNAME": "root",
    "MAINMAST_AUTH_BOOTSTRAP_ADMIN_PASSWORD": _PASSWORD,
}
_RUN_CLI = "from mainmast_auth.cli import main; main()"


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[DatabasePool]:
    """A migrated, empty auth database on each backend."""
    pool = DatabasePool(fresh_database_url, pool_size=2, max_overflow=0)
    try:
        await migrate_database(pool)
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    """One hasher for the module (building one hashes a password)."""
    return PasswordHasher()


def _settings(**values: str) -> AuthSettings:
    password = values.get("password")
    return AuthSettings(
        bootstrap_admin_tenant=values.get("tenant"),
        bootstrap_admin_username=values.get("username"),
        bootstrap_admin_password=None if password is None else SecretStr(password),
    )


async def test_bootstrap_from_settings_creates_the_admin_once(
    database: DatabasePool, hasher: PasswordHasher
) -> None:
    settings = _settings(tenant="acme", username="root", password=_PASSWORD)
    assert not await has_platform_admin(database)
    first = await bootstrap_on_start(database, hasher, settings)
    second = await bootstrap_on_start(database, hasher, settings)
    assert first == "tenants/acme/users/root"
    assert second is None
    assert await has_platform_admin(database)
    async with database.session() as session:
        user = await find_user(session, "tenants/acme/users/root")
    assert user is not None
    assert hasher.verify(user.password_hash, _PASSWORD)


async def test_without_settings_nothing_is_created(
    database: DatabasePool, hasher: PasswordHasher
) -> None:
    assert await bootstrap_on_start(database, hasher, _settings()) is None
    assert not await has_platform_admin(database)


async def test_an_existing_user_is_not_promoted_on_its_own(
    database: DatabasePool, hasher: PasswordHasher
) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415 - only this test needs it

    now = datetime.now(UTC)
    async with database.session() as session:
        await create_tenant(session, "tenants/acme", now=now)
        await create_user(session, "tenants/acme", "root", password_hash="x", now=now)
    settings = _settings(tenant="tenants/acme", username="root", password=_PASSWORD)
    with pytest.raises(FailedPreconditionError, match="role assign tenants/acme/users/root"):
        await bootstrap_on_start(database, hasher, settings)
    assert not await has_platform_admin(database)


def test_bootstrap_settings_come_all_together_or_not_at_all() -> None:
    with pytest.raises(pydantic.ValidationError, match="together"):
        _settings(tenant="acme", username="root")
    assert _settings(tenant=" ", username="", password="").bootstrap_admin_tenant is None


def test_the_bootstrap_password_never_shows_in_the_settings() -> None:
    settings = _settings(tenant="acme", username="root", password=_PASSWORD)
    assert _PASSWORD not in repr(settings)
    assert _PASSWORD not in str(settings.model_dump())


async def _serve_until_ready(env: dict[str, str]) -> list[dict[str, object]]:
    """Start `mainmast-auth serve`, stop it once it serves; its JSON log lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN_CLI,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        env={**os.environ, "MAINMAST_AUTH_LOG_JSON": "true", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    events: list[dict[str, object]] = []
    try:
        while line := await process.stdout.readline():
            if line.startswith(b"{"):
                events.append(orjson.loads(line))
                if events[-1].get("event") == "serving":
                    break
        process.send_signal(signal.SIGTERM)
        rest, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    events += [orjson.loads(line) for line in rest.splitlines() if line.startswith(b"{")]
    return events


def _named(events: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [event for event in events if event.get("event") == name]


async def test_a_start_without_a_platform_admin_says_once_how_to_create_one(
    fresh_database_url: str, tmp_path: Path
) -> None:
    env = {"MAINMAST_AUTH_DATABASE_URL": fresh_database_url, "MAINMAST_DATA_DIR": str(tmp_path)}
    events = await _serve_until_ready(env)
    hints = _named(events, "auth.no_platform_admin")
    assert len(hints) == 1
    assert "mainmast-auth bootstrap-admin TENANT USERNAME" in str(hints[0]["hint"])
    assert "MAINMAST_AUTH_BOOTSTRAP_ADMIN_PASSWORD" in str(hints[0]["hint"])


async def test_serve_creates_the_bootstrap_admin_on_the_first_start_only(
    fresh_database_url: str, tmp_path: Path
) -> None:
    env = {
        "MAINMAST_AUTH_DATABASE_URL": fresh_database_url,
        "MAINMAST_DATA_DIR": str(tmp_path),
        **_BOOTSTRAP_ENV,
    }
    first = await _serve_until_ready(env)
    second = await _serve_until_ready(env)
    assert len(_named(first, "auth.platform_admin_bootstrapped")) == 1
    assert not _named(second, "auth.platform_admin_bootstrapped")
    assert not _named(first + second, "auth.no_platform_admin")
    assert _PASSWORD not in orjson.dumps(first + second).decode()
