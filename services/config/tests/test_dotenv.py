"""The .env backend: python-dotenv's parsing, read again when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mainmast.errors import NotFoundError
from mainmast_config import _dotenv
from mainmast_config._backend import BackendKind
from mainmast_config._dotenv import DotenvBackend

CONTENT = """\
# a comment
DATABASE_PASSWORD="quoted value # not a comment"
export API_KEY=plain
PAYMENTS__STRIPE_KEY='single'
NO_VALUE
LITERAL=${HOME}
"""


async def test_keys_are_read_as_names(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(CONTENT)
    backend = DotenvBackend(path)
    record = await backend.get("database-password")
    assert (record.value, record.backend) == ("quoted value # not a comment", BackendKind.DOTENV)
    assert (await backend.get("api-key")).value == "plain"
    assert (await backend.get("payments/stripe-key")).value == "single"
    assert (await backend.get("literal")).value == "${HOME}"
    assert sorted(await backend.list_names()) == [
        "api-key",
        "database-password",
        "literal",
        "payments/stripe-key",
    ]


async def test_a_key_without_a_value_is_not_set(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(CONTENT)
    with pytest.raises(NotFoundError):
        await DotenvBackend(path).get("no-value")


async def test_a_missing_file_is_an_empty_backend_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    backend = DotenvBackend(path)
    assert await backend.list_names() == []
    with pytest.raises(NotFoundError):
        await backend.get("api-key")
    path.write_text("API_KEY=later\n")
    assert (await backend.get("api-key")).value == "later"


async def test_a_rewritten_or_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("API_KEY=first\n")
    backend = DotenvBackend(path)
    assert (await backend.get("api-key")).value == "first"
    path.write_text("API_KEY=second-longer\n")
    assert (await backend.get("api-key")).value == "second-longer"
    # Same size, written elsewhere and moved over: a new inode.
    replacement = tmp_path / "next.env"
    replacement.write_text("API_KEY=third-longer\n")
    replacement.replace(path)
    assert (await backend.get("api-key")).value == "third-longer"


async def test_an_unchanged_file_is_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text("API_KEY=value\n")
    parses: list[object] = []
    real = _dotenv.dotenv_values

    def counting(*args: object, **kwargs: object) -> dict[str, str | None]:
        parses.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_dotenv, "dotenv_values", counting)
    backend = DotenvBackend(path)
    for _ in range(5):
        await backend.get("api-key")
    assert len(parses) == 1
    os.utime(path, ns=(1, 1))
    await backend.get("api-key")
    assert len(parses) == 2


async def test_the_prefix_applies_to_keys(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("APP_TOKEN=a\nTOKEN=b\n")
    backend = DotenvBackend(path, prefix="APP_")
    assert (await backend.get("token")).value == "a"
    assert await backend.list_names() == ["token"]
