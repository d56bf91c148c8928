"""The files backend: one file per name, Kubernetes' `..data` layout, nothing outside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from mainmast.errors import NotFoundError, UnavailableError
from mainmast_config._backend import BackendKind, digest_version
from mainmast_config._files import FilesBackend


def _mount_like_kubernetes(root: Path, stamp: str, secrets: dict[str, str]) -> None:
    """Lay out `secrets` as the kubelet does, swapping `..data` atomically."""
    timestamped = root / f"..{stamp}"
    timestamped.mkdir()
    for key, value in secrets.items():
        (timestamped / key).write_text(value)
    staging = root / "..data_tmp"
    staging.symlink_to(timestamped.name)
    staging.replace(root / "..data")
    for key in secrets:
        link = root / key
        if not link.is_symlink():
            link.symlink_to(f"..data/{key}")


async def test_a_name_reads_its_file_without_one_trailing_line_break(tmp_path: Path) -> None:
    (tmp_path / "database-password").write_text("s3cret\n")
    (tmp_path / "two-breaks").write_text("x\n\n")
    (tmp_path / "payments").mkdir()
    (tmp_path / "payments" / "stripe-key").write_text("sk_test\r\n")
    backend = FilesBackend(tmp_path)
    record = await backend.get("database-password")
    assert (record.value, record.backend, record.version) == (
        "s3cret",
        BackendKind.FILES,
        digest_version("s3cret"),
    )
    assert (await backend.get("two-breaks")).value == "x\n"
    assert (await backend.get("payments/stripe-key")).value == "sk_test"


async def test_kubernetes_secret_volume_layout_and_its_atomic_update(tmp_path: Path) -> None:
    _mount_like_kubernetes(tmp_path, "2026_01_01_00_00_00.1", {"db-password": "old"})
    backend = FilesBackend(tmp_path)
    assert (await backend.get("db-password")).value == "old"
    assert await backend.list_names() == ["db-password"]
    _mount_like_kubernetes(tmp_path, "2026_01_02_00_00_00.2", {"db-password": "new"})
    assert (await backend.get("db-password")).value == "new"
    assert await backend.list_names() == ["db-password"]


@pytest.mark.parametrize("name", ["../outside", "..data/db-password", "missing", "nested"])
async def test_names_without_a_file_in_the_root_are_not_found(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").write_text("not yours")
    (root / "nested").mkdir()
    _mount_like_kubernetes(root, "1", {"db-password": "x"})
    with pytest.raises(NotFoundError):
        await FilesBackend(root).get(name)


async def test_a_symlink_leading_out_of_the_root_is_neither_read_nor_listed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").write_text("not yours")
    (root / "escape").symlink_to(tmp_path / "outside")
    (root / "dangling").symlink_to(root / "gone")
    (root / "inside").write_text("yours")
    backend = FilesBackend(root)
    with pytest.raises(NotFoundError):
        await backend.get("escape")
    assert await backend.list_names() == ["inside"]


async def test_listing_walks_subdirectories_and_skips_hidden_entries(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    (tmp_path / ".hidden").write_text("2")
    (tmp_path / "payments").mkdir()
    (tmp_path / "payments" / "key").write_text("3")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("4")
    assert sorted(await FilesBackend(tmp_path).list_names()) == ["a", "payments/key"]


async def test_a_missing_root_lists_nothing(tmp_path: Path) -> None:
    assert await FilesBackend(tmp_path / "absent").list_names() == []


async def test_a_file_that_is_not_utf8_is_unavailable_without_its_content(tmp_path: Path) -> None:
    (tmp_path / "binary").write_bytes(b"\xff\xfe-secret-bytes")
    with pytest.raises(UnavailableError) as caught:
        await FilesBackend(tmp_path).get("binary")
    assert caught.value.reason == "BACKEND_UNAVAILABLE"
    assert "secret-bytes" not in caught.value.message


async def test_a_symlink_loop_is_unavailable_and_left_out_of_listings(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "fine").write_text("x")
    backend = FilesBackend(tmp_path)
    with pytest.raises(UnavailableError) as caught:
        await backend.get("loop")
    assert caught.value.metadata == {"backend": "FILES"}
    assert await backend.list_names() == ["fine"]
