"""What a service's migration tests ask of a database: its tables, and how its schema
differs from the service's SQLAlchemy models."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the pytest plugin loads this module: no database code at import
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection


def table_names(connection: Connection) -> set[str]:
    """The tables of the connected database (run it with `connection.run_sync`)."""
    from sqlalchemy import inspect  # noqa: PLC0415 - keeps the plugin light

    return set(inspect(connection).get_table_names())


def sqlite_table_names(path: Path) -> set[str]:
    """The tables of the SQLite file at `path`, read with the standard library."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def schema_differences(
    connection: Connection, metadata: MetaData, *, tables: Collection[str], version_table: str
) -> list[Any]:
    """Alembic's differences between the database and `metadata`, limited to `tables`.

    The fleet's services may share one database (and the tests share one per run), so
    only the named tables and what belongs to them are compared.
    """
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415 - keeps the plugin light
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    def is_ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        del reflected, compare_to  # alembic's hook signature
        if type_ == "table":
            return name in tables
        table = getattr(obj, "table", None)
        return table is None or table.name in tables

    context = MigrationContext.configure(
        connection, opts={"include_object": is_ours, "version_table": version_table}
    )
    return list(compare_metadata(context, metadata))
