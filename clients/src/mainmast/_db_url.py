"""Database URLs: the default SQLite location and the normalisation onto the async drivers.

Every PostgreSQL URL runs on asyncpg and every SQLite URL on aiosqlite, whatever driver the
URL names, so one `DATABASE_URL` written for libpq tools (`postgres://...?sslmode=require`)
works unchanged. libpq's query parameters that asyncpg spells differently are translated
here, once, instead of failing later with an unexpected keyword argument deep in a connect.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DATA_DIR_ENV: Final = "MAINMAST_DATA_DIR"
"""Environment variable naming the folder of the default SQLite databases."""

DEFAULT_DATA_DIR: Final = "data"
"""Folder of the default SQLite databases when `MAINMAST_DATA_DIR` is unset (relative to cwd)."""

Backend = Literal["postgresql", "sqlite"]

_SSL_MODES: Final = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
# libpq parameters that name certificate files: asyncpg takes an ssl.SSLContext instead.
_LIBPQ_CERTIFICATE_PARAMETERS: Final = frozenset(
    {"sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl"}
)
_LIBPQ_OPTION: Final = re.compile(r"(?:-c\s*|--)(?P<key>[A-Za-z_][\w.-]*)=(?P<value>\S*)")
# Settings are separated by whitespace; requiring it keeps the match linear.
_LIBPQ_OPTIONS: Final = re.compile(r"\s*(?:(?:-c\s*|--)[A-Za-z_][\w.-]*=\S*(?:\s+|$))*")
_DATABASE_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class DatabaseUrlError(ValueError):
    """A database URL that mainmast cannot use (bad syntax, unsupported backend or option)."""


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A database URL made ready for `create_async_engine`."""

    url: URL
    """The URL with its async driver; `str(url)` masks the password."""
    backend: Backend
    """Which database server speaks at the other end."""
    connect_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the driver's connect that a URL cannot carry."""

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for logs and messages."""
        return self.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL, None for PostgreSQL."""
        if self.backend != "sqlite" or not self.url.database:
            return None
        return Path(self.url.database)


def default_sqlite_url(
    name: str = "mainmast", *, data_dir: str | os.PathLike[str] | None = None
) -> str:
    """Return the URL of SQLite database `name` in the data folder.

    The folder is `data_dir`, else the `MAINMAST_DATA_DIR` environment variable, else `./data`;
    the URL carries its absolute path, so it does not change meaning when the process changes
    directory. The folder is created when the pool opens, not here.
    """
    if not _DATABASE_NAME_PATTERN.fullmatch(name):
        raise DatabaseUrlError(
            f"database name {name!r} must be letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    folder = Path(
        data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    )
    path = folder.expanduser().resolve() / f"{name}.db"
    return URL.create("sqlite+aiosqlite", database=str(path)).render_as_string()


def normalize_database_url(url: str | URL, *, connect_timeout: float) -> DatabaseTarget:
    """Put `url` on its async driver and translate libpq parameters for asyncpg.

    `connect_timeout` (seconds) bounds each PostgreSQL connection attempt unless the URL's own
    libpq `connect_timeout` says otherwise. Raises DatabaseUrlError for anything unusable.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        # SQLAlchemy's message does not repeat the URL; ours must not either (password).
        raise DatabaseUrlError("not a database URL (expected e.g. postgresql://host/db)") from exc
    backend = parsed.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        return _postgresql_target(parsed, connect_timeout)
    if backend == "sqlite":
        return _sqlite_target(parsed)
    raise DatabaseUrlError(
        f"unsupported database backend {backend!r}: mainmast runs on postgresql and sqlite"
    )


def _postgresql_target(url: URL, connect_timeout: float) -> DatabaseTarget:
    query = dict(url.query)
    connect_args: dict[str, Any] = {"timeout": connect_timeout}
    unsupported = sorted(_LIBPQ_CERTIFICATE_PARAMETERS & query.keys())
    if unsupported:
        raise DatabaseUrlError(
            f"URL parameters {', '.join(unsupported)} are not supported: set PGSSLROOTCERT, "
            "PGSSLCERT and PGSSLKEY in the environment, or pass connect_args={'ssl': <SSLContext>}"
        )
    if "sslmode" in query:
        mode = _single(query.pop("sslmode"), "sslmode")
        if mode not in _SSL_MODES:
            raise DatabaseUrlError(
                f"sslmode {mode!r} is not one of {', '.join(sorted(_SSL_MODES))}"
            )
        # asyncpg's `ssl` keyword takes libpq's mode names as they are.
        query.setdefault("ssl", mode)
    if "connect_timeout" in query:
        raw = _single(query.pop("connect_timeout"), "connect_timeout")
        try:
            connect_args["timeout"] = float(raw)
        except ValueError as exc:
            raise DatabaseUrlError(f"connect_timeout {raw!r} is not a number of seconds") from exc
    server_settings: dict[str, str] = {}
    if "application_name" in query:
        server_settings["application_name"] = _single(
            query.pop("application_name"), "application_name"
        )
    if "options" in query:
        server_settings.update(_parse_libpq_options(_single(query.pop("options"), "options")))
    if server_settings:
        connect_args["server_settings"] = server_settings
    normalized = url.set(drivername="postgresql+asyncpg", query=query)
    return DatabaseTarget(url=normalized, backend="postgresql", connect_args=connect_args)


def _sqlite_target(url: URL) -> DatabaseTarget:
    database = url.database or ""
    if database in {"", ":memory:"} or url.query.get("mode") == "memory":
        # Each pooled connection would open its own empty database.
        raise DatabaseUrlError(
            "in-memory SQLite is not supported by a connection pool: use a file "
            "(default_sqlite_url(), or the sqlite_url pytest fixture in tests)"
        )
    return DatabaseTarget(url=url.set(drivername="sqlite+aiosqlite"), backend="sqlite")


def _single(value: str | tuple[str, ...], name: str) -> str:
    if isinstance(value, tuple):
        raise DatabaseUrlError(f"URL parameter {name} is given more than once")
    return value


def _parse_libpq_options(options: str) -> dict[str, str]:
    """Turn libpq's `options=-c key=value -c key2=value2` into server settings."""
    if not _LIBPQ_OPTIONS.fullmatch(options):
        raise DatabaseUrlError("URL parameter options must be '-c name=value' settings")
    return {
        match["key"].replace("-", "_"): match["value"] for match in _LIBPQ_OPTION.finditer(options)
    }
