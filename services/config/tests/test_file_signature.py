"""A file's signature changes when the file is rewritten, replaced or removed."""

from __future__ import annotations

from pathlib import Path

from mainmast_config._file_signature import file_signature


def test_the_signature_changes_with_the_file_and_is_none_without_one(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    assert file_signature(path) is None

    path.write_text("rules: []\n")
    first = file_signature(path)
    assert first is not None
    assert file_signature(path) == first

    path.write_text("rules: [] \n")
    rewritten = file_signature(path)
    replacement = tmp_path / "next.yaml"
    replacement.write_text("rules: []\n")
    replacement.replace(path)  # an editor's or a ConfigMap's swap: a new inode
    replaced = file_signature(path)

    assert len({first, rewritten, replaced}) == 3
