"""The policy file in force: read at start (a missing or bad file stops the start), reloaded
when it changes, and kept when a new version is bad or the file goes missing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mainmast.runtime import Principal
from mainmast_config._audit import AccessKind
from mainmast_config._policy_file import PolicyFileError
from mainmast_config._policy_reload import PolicyFile

MIA = Principal("tenants/acme", "tenants/acme/users/mia")
GRANT_MIA = "rules:\n  - subjects: [tenants/acme/users/mia]\n    secrets: ['**']\n"
GRANT_NOBODY = "rules: []\n"


def _may_read(policy_file: PolicyFile) -> bool:
    return policy_file.policy.allows(MIA, AccessKind.SECRET, "orders/db-password")


def test_a_missing_or_invalid_file_stops_the_start(tmp_path: Path) -> None:
    missing = PolicyFile(tmp_path / "missing.yaml")
    with pytest.raises(PolicyFileError, match="does not exist"):
        missing.load()
    with pytest.raises(RuntimeError, match="load"):
        missing.policy  # noqa: B018 -- the property raises
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - subjects: [a]\n")
    with pytest.raises(PolicyFileError, match="line 2, rules"):
        PolicyFile(bad).load()
    with pytest.raises(ValueError, match="positive"):
        PolicyFile(bad, poll_interval=0)


async def test_a_changed_file_replaces_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GRANT_NOBODY)
    policy_file = PolicyFile(path)
    policy_file.load()

    assert not await policy_file.reload_if_changed()
    path.write_text(GRANT_MIA)
    with capture_logs() as logs:
        assert await policy_file.reload_if_changed()

    assert _may_read(policy_file)
    assert [(entry["event"], entry["rules"]) for entry in logs] == [
        ("config.access_policy_reloaded", 1)
    ]


async def test_a_bad_new_file_keeps_the_old_policy_and_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GRANT_MIA)
    policy_file = PolicyFile(path)
    policy_file.load()

    path.write_text("rules:\n  - subjects: [tenants/acme/users/mia]\n    secrets: ['a b']\n")
    with capture_logs() as logs:
        assert not await policy_file.reload_if_changed()
        assert not await policy_file.reload_if_changed()
    assert _may_read(policy_file)
    assert [entry["event"] for entry in logs] == ["config.access_policy_not_reloaded"]
    assert logs[0]["log_level"] == "error"
    assert [problem.split(": ")[0] for problem in logs[0]["problems"]] == [
        "line 3, rules[0].secrets[0]"
    ]
    assert "previous policy stays in force" in logs[0]["problem"]

    path.write_text(GRANT_NOBODY)
    assert await policy_file.reload_if_changed()
    assert not _may_read(policy_file)


async def test_a_deleted_file_keeps_the_old_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GRANT_MIA)
    policy_file = PolicyFile(path)
    policy_file.load()

    path.unlink()
    with capture_logs() as logs:
        assert not await policy_file.reload_if_changed()
        assert not await policy_file.reload_if_changed()

    assert _may_read(policy_file)
    assert len(logs) == 1
    assert "is missing" in logs[0]["problem"]
    path.write_text(GRANT_MIA + "\n")
    assert await policy_file.reload_if_changed()


async def test_the_poller_applies_a_change_without_being_asked(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(GRANT_NOBODY)
    policy_file = PolicyFile(path, poll_interval=0.01)
    with pytest.raises(RuntimeError, match="load"):
        policy_file.start()
    policy_file.load()
    policy_file.start()
    try:
        path.write_text(GRANT_MIA)
        for _ in range(500):  # bounded: polls every 10 ms
            if _may_read(policy_file):
                break
            await asyncio.sleep(0.01)
        assert _may_read(policy_file)
    finally:
        await policy_file.aclose()
    await policy_file.aclose()  # closing twice is harmless
