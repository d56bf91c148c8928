"""One replica's AccessState, kept in step with the store by polling its version.

Every revocation and every disabled tenant, user or service account bumps a one-row
version counter in the same transaction (`_store_access_state`). `AccessStateSync` reads
that counter every `poll_interval` (250 ms by default) and, when it moved, loads what
still matters and swaps it in at once. So a revocation or a disabled principal made
through any replica is enforced by every other one within about a poll interval, and
authenticating a call reads nothing from the database.

Changes made through this replica are applied to its state as soon as their transaction
has committed (`token_revoked`, `subject_revoked`, `disabled`), with no wait for a poll.
A reload that runs meanwhile may have read the store before such a commit: the changes
applied while a reload is under way are applied again on top of what it loaded, so a
local change is never lost to a reload that raced it. The version this replica holds is
only ever the one a reload read, so the next poll reloads once more after a local change
and then agrees with the store.

Expired revocations are pruned at every poll (at most once a minute), so memory follows
the live tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mainmast.db import DatabasePool
from mainmast.logging import get_logger

from ._access_state import AccessState
from ._polling import DEFAULT_POLL_INTERVAL, Poller
from ._store_access_state import access_state_version, load_access_state

_Change = Callable[[AccessState], None]


class AccessStateSync:
    """An `AccessState` that follows the store; `start()` it, `stop()` it.

    `token_lifetime` and `leeway` are the service's: they bound how long a revocation can
    matter.
    """

    __slots__ = (
        "_database",
        "_leeway",
        "_log",
        "_pending",
        "_poller",
        "_state",
        "_token_lifetime",
        "_version",
    )

    def __init__(
        self,
        database: DatabasePool,
        *,
        token_lifetime: timedelta,
        leeway: timedelta,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._poller = Poller(
            self._poll_once,
            interval=poll_interval,
            name="mainmast-auth-access-state-sync",
            failure_event="auth.access_state_reload_failed",
        )
        self._database = database
        self._token_lifetime = token_lifetime
        self._leeway = leeway
        self._state = AccessState(token_lifetime=token_lifetime, leeway=leeway)
        self._version: int | None = None
        # Local changes applied while a reload is under way, to apply again after it.
        self._pending: list[_Change] | None = None
        self._log = get_logger("mainmast_auth.access_state_sync")

    @property
    def state(self) -> AccessState:
        """The access state as of the last load or local change."""
        return self._state

    @property
    def version(self) -> int | None:
        """The access-state version last loaded; None before the first load."""
        return self._version

    async def start(self) -> None:
        """Load the access state, then poll its version in a background task."""
        await self._poller.start()

    async def stop(self) -> None:
        """Stop polling (the state keeps what it holds)."""
        await self._poller.stop()

    async def refresh(self) -> bool:
        """Reload the access state if its stored version moved; whether it did."""
        self._pending = []
        try:
            async with self._database.session() as session:
                current = await access_state_version(session)
                if current == self._version:
                    return False
                now = datetime.now(UTC)
                snapshot = await load_access_state(
                    session, now=now, token_lifetime=self._token_lifetime, leeway=self._leeway
                )
            self._state.replace(snapshot, now=now)
            for change in self._pending:
                change(self._state)
        finally:
            self._pending = None
        previous, self._version = self._version, snapshot.version
        self._log.debug(
            "auth.access_state_reloaded",
            version=snapshot.version,
            previous_version=previous,
            entries=len(self._state),
        )
        return True

    async def _poll_once(self) -> None:
        await self.refresh()
        self._state.prune(datetime.now(UTC))

    def _apply(self, change: _Change) -> None:
        change(self._state)
        if self._pending is not None:
            self._pending.append(change)

    def token_revoked(self, token_id: str, expire_time: datetime) -> None:
        """Refuse `token_id` at once; call after the revocation committed."""
        self._apply(lambda state: state.revoke_token(token_id, expire_time))

    def subject_revoked(self, subject: str, not_before: datetime) -> None:
        """Refuse `subject`'s tokens issued before `not_before` at once; call after commit."""
        self._apply(lambda state: state.revoke_subject(subject, not_before))

    def disabled(self, name: str) -> None:
        """Refuse the tokens of the principal, or every principal of the tenant, `name`
        at once; call after the change committed."""
        self._apply(lambda state: state.disable((name,)))
