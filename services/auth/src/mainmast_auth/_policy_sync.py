"""One replica's Authorizer, kept in step with the policy store by polling its version.

Every policy change bumps a one-row version counter in the same transaction as the
lines (`_store_policies`). `PolicySync` reads that counter every `poll_interval`
(250 ms by default, one indexed single-row read) and, when it moved, loads every line
and swaps them into its `Authorizer` at once. So a grant or revocation made through
any replica is enforced by every other one within about a poll interval, with no
channel between replicas but the database they share.

Changes made through this replica are persisted first and applied to the in-memory
authorizer after the commit (`commit_changes`), so a failed transaction never leaves a
decision behind that the store does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.db import DatabasePool
from mainmast.logging import get_logger

from ._authorizer import Authorizer
from ._policy_model import PolicyChange
from ._polling import DEFAULT_POLL_INTERVAL, Poller
from ._store_policies import load_policy, policy_version, save_policy_changes


class PolicySync:
    """An `Authorizer` that follows the policy store; `start()` it, `stop()` it.

    Checks read `authorizer` directly (no database access on the decision path).
    """

    __slots__ = ("_authorizer", "_database", "_log", "_poller", "_version")

    def __init__(
        self, database: DatabasePool, *, poll_interval: float = DEFAULT_POLL_INTERVAL
    ) -> None:
        self._poller = Poller(
            self.refresh,
            interval=poll_interval,
            name="mainmast-auth-policy-sync",
            failure_event="auth.policy_reload_failed",
        )
        self._database = database
        self._authorizer = Authorizer()
        self._version: int | None = None
        self._log = get_logger("mainmast_auth.policy_sync")

    @property
    def authorizer(self) -> Authorizer:
        """The authorizer holding the policy as of the last load or local change."""
        return self._authorizer

    @property
    def version(self) -> int | None:
        """The policy version the authorizer holds; None before the first load."""
        return self._version

    async def start(self) -> None:
        """Load the policy, then poll its version in a background task."""
        await self._poller.start()

    async def stop(self) -> None:
        """Stop polling (the authorizer keeps its last state)."""
        await self._poller.stop()

    async def refresh(self) -> bool:
        """Reload the policy if its stored version moved; whether it did."""
        async with self._database.session() as session:
            current = await policy_version(session)
            if current == self._version:
                return False
            snapshot = await load_policy(session)
        self._authorizer.replace_lines(snapshot.lines)
        previous, self._version = self._version, snapshot.version
        self._log.debug(
            "auth.policy_reloaded",
            version=snapshot.version,
            previous_version=previous,
            lines=len(self._authorizer),
        )
        return True

    async def commit_changes(self, session: AsyncSession, changes: Sequence[PolicyChange]) -> int:
        """Persist `changes` in `session`'s transaction; the policy version after them.

        Call `applied(changes, version)` once the transaction committed.
        """
        return await save_policy_changes(session, changes)

    def applied(self, changes: Sequence[PolicyChange], version: int) -> None:
        """Apply committed `changes` to the in-memory authorizer.

        When `version` follows the one held directly, the authorizer now matches the
        store and becomes that version; otherwise another replica changed the policy in
        between, and the next poll reloads everything.
        """
        self._authorizer.apply(changes)
        if changes and self._version is not None and version == self._version + 1:
            self._version = version
