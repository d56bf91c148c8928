"""Databases for mainmast services: an async SQLAlchemy pool with health checks, and migrations.

    pool = DatabasePool(settings.database_url)      # None: SQLite in the data folder
    async with pool:                                 # starts the health checks; closes at exit
        await upgrade_database(pool, script_location="mainmast_auth:migrations")
        async with pool.session() as session:        # commits, or rolls back on error
            session.add(user)

PostgreSQL URLs (`postgres://`, `postgresql://`, `postgresql+asyncpg://`) run on asyncpg,
SQLite files on aiosqlite. Connection failures raise `mainmast.errors.UnavailableError` whose
`reason` is a `DatabaseErrorReason` (DATABASE_UNAVAILABLE, DATABASE_CONNECTION_LOST,
DATABASE_AUTHENTICATION_FAILED, DATABASE_POOL_EXHAUSTED, DATABASE_BUSY, DATABASE_POOL_CLOSED);
no message, snapshot or log line carries the URL's password. `pool.health()` tells a
database that is down from a pool that is saturated, and each change is logged.
"""

from mainmast._db_errors import DatabaseErrorReason
from mainmast._db_health import PoolHealth, PoolState
from mainmast._db_pool import DatabasePool
from mainmast._db_url import (
    DATA_DIR_ENV,
    Backend,
    DatabaseTarget,
    DatabaseUrlError,
    default_sqlite_url,
    normalize_database_url,
)
from mainmast._migrations import (
    DEFAULT_VERSION_TABLE,
    alembic_config,
    migration_lock_key,
    resolve_script_location,
    run_migrations,
    upgrade_database,
)

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_VERSION_TABLE",
    "Backend",
    "DatabaseErrorReason",
    "DatabasePool",
    "DatabaseTarget",
    "DatabaseUrlError",
    "PoolHealth",
    "PoolState",
    "alembic_config",
    "default_sqlite_url",
    "migration_lock_key",
    "normalize_database_url",
    "resolve_script_location",
    "run_migrations",
    "upgrade_database",
]
