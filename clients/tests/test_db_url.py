"""Database URLs: the default SQLite location and the normalisation onto async drivers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from mainmast.db import DATA_DIR_ENV, DatabaseUrlError, default_sqlite_url, normalize_database_url

PASSWORD = "Pa55:w@rd/%?#-xyz"


def test_default_sqlite_url_is_in_the_data_dir_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "state"))
    url = make_url(default_sqlite_url("auth"))
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(tmp_path / "state" / "auth.db")


def test_default_sqlite_url_falls_back_to_data_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert make_url(default_sqlite_url()).database == str(
        tmp_path.resolve() / "data" / "mainmast.db"
    )


def test_default_sqlite_url_prefers_an_explicit_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "ignored"))
    url = make_url(default_sqlite_url("llm", data_dir=tmp_path / "chosen"))
    assert url.database == str(tmp_path / "chosen" / "llm.db")


def test_default_sqlite_url_does_not_touch_the_file_system(tmp_path: Path) -> None:
    default_sqlite_url("config", data_dir=tmp_path / "later")
    assert not (tmp_path / "later").exists()


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "with space"])
def test_default_sqlite_url_rejects_names_that_are_not_plain_file_names(name: str) -> None:
    with pytest.raises(DatabaseUrlError, match="database name"):
        default_sqlite_url(name)


@pytest.mark.parametrize(
    "url",
    [
        "postgres://app:pw@db.internal:5433/orders",
        "postgresql://app:pw@db.internal:5433/orders",
        "postgresql+asyncpg://app:pw@db.internal:5433/orders",
        "postgresql+psycopg2://app:pw@db.internal:5433/orders",
    ],
)
def test_every_postgresql_url_runs_on_asyncpg(url: str) -> None:
    target = normalize_database_url(url, connect_timeout=7.0)
    assert target.backend == "postgresql"
    assert target.url.drivername == "postgresql+asyncpg"
    assert (target.url.host, target.url.port, target.url.database) == (
        "db.internal",
        5433,
        "orders",
    )
    assert (target.url.username, target.url.password) == ("app", "pw")
    assert target.connect_args == {"timeout": 7.0}


@pytest.mark.parametrize(
    "mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
)
def test_libpq_sslmode_becomes_asyncpg_ssl(mode: str) -> None:
    target = normalize_database_url(f"postgres://h/db?sslmode={mode}", connect_timeout=10.0)
    assert dict(target.url.query) == {"ssl": mode}


def test_libpq_connect_timeout_application_name_and_options_are_translated() -> None:
    url = URL.create(
        "postgresql",
        host="h",
        database="db",
        query={
            "connect_timeout": "3",
            "application_name": "auth",
            "options": "-c statement_timeout=5000 -csearch_path=app --lock-timeout=100",
        },
    )
    target = normalize_database_url(url, connect_timeout=10.0)
    assert dict(target.url.query) == {}
    assert target.connect_args == {
        "timeout": 3.0,
        "server_settings": {
            "application_name": "auth",
            "statement_timeout": "5000",
            "search_path": "app",
            "lock_timeout": "100",
        },
    }


def test_asyncpg_parameters_pass_through_untouched() -> None:
    target = normalize_database_url(
        "postgresql://h/db?prepared_statement_cache_size=0", connect_timeout=10.0
    )
    assert dict(target.url.query) == {"prepared_statement_cache_size": "0"}


@pytest.mark.parametrize(
    "url", ["sqlite:///relative.db", "sqlite+pysqlite:////abs/app.db", "sqlite+aiosqlite:///x.db"]
)
def test_every_sqlite_file_url_runs_on_aiosqlite(url: str) -> None:
    target = normalize_database_url(url, connect_timeout=10.0)
    assert target.backend == "sqlite"
    assert target.url.drivername == "sqlite+aiosqlite"
    assert target.url.database == make_url(url).database
    assert target.sqlite_path == Path(str(make_url(url).database))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        (f"mysql://root:{PASSWORD}@h/db", "unsupported database backend 'mysql'"),
        ("postgres://h/db?sslmode=sometimes", "sslmode 'sometimes'"),
        ("postgres://h/db?sslmode=require&sslmode=disable", "more than once"),
        ("postgres://h/db?sslrootcert=/ca.pem", "sslrootcert"),
        ("postgres://h/db?connect_timeout=soon", "connect_timeout 'soon'"),
        ("postgres://h/db?options=-c", "options"),
        ("postgres://h/db?options=statement_timeout", "options"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("sqlite:///file.db?mode=memory", "in-memory SQLite"),
    ],
)
def test_unusable_urls_raise_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message) as raised:
        normalize_database_url(url, connect_timeout=10.0)
    assert PASSWORD not in str(raised.value)


def test_the_safe_url_masks_the_password() -> None:
    url = URL.create("postgresql", username="app", password=PASSWORD, host="h", database="db")
    target = normalize_database_url(url, connect_timeout=10.0)
    assert target.url.password == PASSWORD
    assert PASSWORD not in target.safe_url
    assert PASSWORD not in str(target.url)
    assert target.safe_url == "postgresql+asyncpg://app:***@h/db"
