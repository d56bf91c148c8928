"""Both syncs that follow the store by polling (`PolicySync`, `AccessStateSync`) pick changes
up, survive failed reads and refuse a non-positive interval: the `Poller` they share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import text

from mainmast.db import DatabasePool
from mainmast_auth._access_state_sync import AccessStateSync
from mainmast_auth._authorizer import Authorizer
from mainmast_auth._policy_sync import PolicySync
from mainmast_auth._resource_names import PrincipalKind
from mainmast_auth._store_policies import save_policy_changes
from mainmast_auth._store_tokens import revoke_token_ids
from mainmast_auth.testing import eventually

LIFETIME = timedelta(minutes=15)
LEEWAY = timedelta(seconds=30)
VIEWER = "tenants/acme/roles/viewer"

Sync = PolicySync | AccessStateSync


@dataclass(frozen=True)
class Followed:
    """One sync, what it follows, and how a test changes and observes that."""

    make: Callable[[DatabasePool, float], Sync]
    change: Callable[[DatabasePool, str], Awaitable[None]]
    """Store the change named by a word, as another replica would."""
    seen: Callable[[Sync, str], bool]
    """Whether the sync holds that change."""
    version_table: str
    failure_event: str


async def _grant(database: DatabasePool, word: str) -> None:
    async with database.session() as session:
        await save_policy_changes(session, Authorizer().grant_permission(VIEWER, f"{word}:read"))


def _granted(sync: Sync, word: str) -> bool:
    assert isinstance(sync, PolicySync)
    return f"{word}:read" in sync.authorizer.permissions_of(VIEWER)


async def _revoke(database: DatabasePool, word: str) -> None:
    async with database.session() as session:
        now = datetime.now(UTC)
        await revoke_token_ids(session, [(f"jti-{word}", now + LIFETIME)], now=now)


def _revoked(sync: Sync, word: str) -> bool:
    assert isinstance(sync, AccessStateSync)
    reason = sync.state.refusal(
        token_id=f"jti-{word}",
        subject="tenants/acme/users/alice",
        tenant="tenants/acme",
        issued_at=datetime.now(UTC).timestamp(),
        kind=PrincipalKind.USER,
    )
    return reason is not None


POLICY = Followed(
    make=lambda database, interval: PolicySync(database, poll_interval=interval),
    change=_grant,
    seen=_granted,
    version_table="auth_policy_version",
    failure_event="auth.policy_reload_failed",
)
ACCESS_STATE = Followed(
    make=lambda database, interval: AccessStateSync(
        database, token_lifetime=LIFETIME, leeway=LEEWAY, poll_interval=interval
    ),
    change=_revoke,
    seen=_revoked,
    version_table="auth_access_state_version",
    failure_event="auth.access_state_reload_failed",
)
FOLLOWED = pytest.mark.parametrize("followed", [POLICY, ACCESS_STATE], ids=["policy", "access"])


@FOLLOWED
async def test_polling_picks_changes_up_and_survives_failed_reads(
    migrated_sqlite: DatabasePool, followed: Followed
) -> None:
    database = migrated_sqlite
    sync = followed.make(database, 0.01)

    async def seen(word: str) -> bool:
        return followed.seen(sync, word)

    async def failures_logged(events: list[MutableMapping[str, Any]]) -> bool:
        names = [str(event["event"]) for event in events]
        return names.count(followed.failure_event) >= 2

    await sync.start()
    try:
        with pytest.raises(RuntimeError):
            await sync.start()
        await followed.change(database, "x")
        assert await eventually(lambda: seen("x"))

        # While the version cannot be read, polls fail and are logged; polling goes on.
        table = followed.version_table
        with structlog.testing.capture_logs() as events:
            async with database.session() as session:
                await session.execute(text(f"ALTER TABLE {table} RENAME TO away_for_a_moment"))
            assert await eventually(lambda: failures_logged(events))
        async with database.session() as session:
            await session.execute(text(f"ALTER TABLE away_for_a_moment RENAME TO {table}"))
        await followed.change(database, "y")
        assert await eventually(lambda: seen("y"))
    finally:
        await sync.stop()
    await sync.stop()  # stopping twice is harmless


@FOLLOWED
async def test_the_poll_interval_must_be_positive(
    migrated_sqlite: DatabasePool, followed: Followed
) -> None:
    with pytest.raises(ValueError, match="positive"):
        followed.make(migrated_sqlite, 0)
