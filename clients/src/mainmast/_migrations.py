"""Alembic migrations without an alembic.ini: upgrade at startup, and the body of env.py.

A service keeps its migrations in a package folder (`mainmast_auth/migrations/` with
`env.py` and `versions/`) and upgrades at startup:

    await upgrade_database(pool, script_location="mainmast_auth:migrations")

Its `env.py` is two lines:

    from mainmast.db import run_migrations
    run_migrations(target_metadata=Base.metadata)

Migrations run in one transaction under a lock, so replicas starting together apply them
once: PostgreSQL takes a transaction-level advisory lock (released by the commit, or by
the server if the process dies), SQLite takes its write lock with `BEGIN IMMEDIATE`.
Alembic keeps its context in module globals, so one process runs one upgrade at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from mainmast._db_pool import DatabasePool
from mainmast._db_url import normalize_database_url
from mainmast.logging import get_logger

if TYPE_CHECKING:
    from sqlalchemy import MetaData

DEFAULT_VERSION_TABLE: Final = "alembic_version"
_CONNECTION_KEY: Final = "mainmast.connection"
_URL_KEY: Final = "mainmast.url"
_VERSION_TABLE_KEY: Final = "mainmast.version_table"


async def upgrade_database(
    database: DatabasePool | str | URL | None,
    *,
    script_location: str,
    revision: str = "head",
    version_table: str = DEFAULT_VERSION_TABLE,
) -> tuple[str, ...]:
    """Apply the migrations at `script_location` up to `revision`; return the revisions now
    current.

    `database` is a pool (its engine is used and left open) or a URL (a one-connection pool
    is made and closed). `script_location` is a folder path or `package:folder`. Services
    sharing one database give each its own `version_table`. Running it again does nothing;
    two processes running it at once apply each migration once. A database that cannot be
    reached raises UnavailableError.
    """
    config = alembic_config(script_location, version_table=version_table)
    if isinstance(database, DatabasePool):
        return await _upgrade(database, config, revision)
    pool = DatabasePool(database, pool_size=1, max_overflow=0)
    try:
        return await _upgrade(pool, config, revision)
    finally:
        await pool.close()


def alembic_config(
    script_location: str,
    *,
    url: str | URL | None = None,
    version_table: str = DEFAULT_VERSION_TABLE,
) -> Config:
    """An Alembic Config built in code, for `alembic.command` (e.g. to write a revision).

    `url` is only needed when no connection is handed over, as with
    `command.revision(alembic_config("mainmast_auth:migrations", url=...), autogenerate=True)`.
    """
    folder = resolve_script_location(script_location)
    config = Config()
    # Config is a ConfigParser: a '%' in a path would start an interpolation.
    config.set_main_option("script_location", str(folder).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes[_VERSION_TABLE_KEY] = version_table
    if url is not None:
        config.attributes[_URL_KEY] = url
    return config


def resolve_script_location(script_location: str) -> Path:
    """The migrations folder named by a path or by `package:folder/inside`."""
    package, separator, inside = script_location.partition(":")
    if not separator or Path(script_location).is_absolute() or _is_drive_path(script_location):
        folder = Path(script_location)
    else:
        try:
            root = importlib.resources.files(package)
        except ModuleNotFoundError as exc:
            raise ValueError(
                f"script_location {script_location!r}: no package {package!r}"
            ) from exc
        resource = root.joinpath(*[part for part in inside.split("/") if part])
        if not isinstance(resource, Path):
            raise ValueError(
                f"script_location {script_location!r} must be installed as files, not in an archive"
            )
        folder = resource
    if not folder.is_dir():
        raise ValueError(f"script_location {script_location!r} is not a folder")
    return folder


def run_migrations(
    target_metadata: MetaData | Sequence[MetaData] | None = None, **configure_options: Any
) -> None:
    """The body of a service's migrations `env.py`.

    Runs on the connection `upgrade_database` handed over, else (the `alembic` command line,
    `alembic_config(url=...)`) on a connection of its own, or writes SQL in offline mode.
    `target_metadata` feeds autogenerate; `configure_options` go to `context.configure`.
    """
    from alembic import context  # noqa: PLC0415 - exists only while Alembic runs an env.py

    config = context.config
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "version_table": config.attributes.get(_VERSION_TABLE_KEY, DEFAULT_VERSION_TABLE),
        # Batch operations let autogenerated ALTERs run on SQLite as well as PostgreSQL.
        "render_as_batch": True,
        **configure_options,
    }
    connection = config.attributes.get(_CONNECTION_KEY)
    if isinstance(connection, Connection):
        _run_locked(connection, options)
        return
    url = config.attributes.get(_URL_KEY) or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database to migrate: call upgrade_database(), or build the Alembic config "
            "with alembic_config(..., url=...)"
        )
    if context.is_offline_mode():
        target = normalize_database_url(url, connect_timeout=10.0)
        context.configure(
            url=target.url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **options
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, options))


def migration_lock_key(version_table: str) -> int:
    """The PostgreSQL advisory lock key that serialises upgrades of `version_table`."""
    digest = hashlib.sha256(f"mainmast.migrations:{version_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _upgrade(pool: DatabasePool, config: Config, revision: str) -> tuple[str, ...]:
    async with pool.connection() as connection:
        heads = await connection.run_sync(_upgrade_on, config, revision)
    get_logger("mainmast.db").info(
        "db.migrations.current", database=str(pool.url), revisions=list(heads)
    )
    return heads


def _upgrade_on(connection: Connection, config: Config, revision: str) -> tuple[str, ...]:
    config.attributes[_CONNECTION_KEY] = connection
    try:
        command.upgrade(config, revision)
    finally:
        del config.attributes[_CONNECTION_KEY]
    version_table = config.attributes[_VERSION_TABLE_KEY]
    migration = MigrationContext.configure(connection, opts={"version_table": version_table})
    return migration.get_current_heads()


async def _run_online(url: str | URL, options: dict[str, Any]) -> None:
    pool = DatabasePool(url, pool_size=1, max_overflow=0)
    try:
        async with pool.connection() as connection:
            await connection.run_sync(_run_locked, options)
    finally:
        await pool.close()


def _run_locked(connection: Connection, options: dict[str, Any]) -> None:
    """Take the migration lock inside the connection's transaction, then migrate."""
    from alembic import context  # noqa: PLC0415 - exists only while Alembic runs an env.py

    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": migration_lock_key(options["version_table"])},
        )
    elif connection.dialect.name == "sqlite":
        # pysqlite opens transactions lazily (and never for DDL); take the write lock now so
        # the version check and every migration happen under it.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


def _is_drive_path(location: str) -> bool:
    # "C:\\migrations" on Windows is a path, not package "C".
    return os.name == "nt" and len(location) > 1 and location[1] == ":"
