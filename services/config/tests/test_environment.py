"""The environment backend: names as variables, an optional prefix, live values."""

from __future__ import annotations

import pytest

from mainmast.errors import NotFoundError
from mainmast_config._backend import BackendKind, digest_version
from mainmast_config._environment import EnvironmentBackend


async def test_a_name_reads_its_variable_and_says_which_backend_answered() -> None:
    backend = EnvironmentBackend(environ={"DATABASE_PASSWORD": "hunter2-env"})
    record = await backend.get("database-password")
    assert (record.name, record.value, record.backend) == (
        "database-password",
        "hunter2-env",
        BackendKind.ENVIRONMENT,
    )
    assert record.version == digest_version("hunter2-env")
    assert "hunter2-env" not in repr(record)


async def test_a_missing_variable_is_secret_not_found() -> None:
    with pytest.raises(NotFoundError) as caught:
        await EnvironmentBackend(environ={}).get("database-password")
    assert caught.value.reason == "SECRET_NOT_FOUND"


async def test_the_prefix_is_required_and_listing_keeps_to_it() -> None:
    environ = {"APP_DATABASE_PASSWORD": "p1", "DATABASE_PASSWORD": "p2", "APP_PAYMENTS__KEY": "k"}
    backend = EnvironmentBackend(prefix="APP_", environ=environ)
    assert (await backend.get("database-password")).value == "p1"
    assert sorted(await backend.list_names()) == ["database-password", "payments/key"]


async def test_a_version_other_than_the_current_digest_is_version_not_found() -> None:
    backend = EnvironmentBackend(environ={"TOKEN": "abc"})
    assert (await backend.get("token", digest_version("abc"))).value == "abc"
    with pytest.raises(NotFoundError) as caught:
        await backend.get("token", "0" * 32)
    assert caught.value.reason == "SECRET_VERSION_NOT_FOUND"


async def test_values_are_read_live(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = EnvironmentBackend(prefix="MAINMAST_CONFIG_TEST_")
    monkeypatch.setenv("MAINMAST_CONFIG_TEST_ROTATING", "one")
    assert (await backend.get("rotating")).value == "one"
    monkeypatch.setenv("MAINMAST_CONFIG_TEST_ROTATING", "two")
    assert (await backend.get("rotating")).value == "two"


def test_a_prefix_with_other_characters_is_rejected() -> None:
    with pytest.raises(ValueError, match="prefix"):
        EnvironmentBackend(prefix="APP-")
