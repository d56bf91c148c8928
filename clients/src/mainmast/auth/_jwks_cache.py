"""Local verification over a cached JWKS that refreshes itself.

`JwksCache.verify` checks a token against the last good key set, with no call. The key
set is fetched again:

- in the background once it is older than the `max_age` the service announced (the call
  in progress, and every other, keeps using the current keys meanwhile);
- at once when a token names an unknown key id (a rotation this process has not seen),
  at most once per `min_refresh_interval_seconds`, so a flood of tokens with made-up key
  ids costs one fetch per interval, not one per token.

After a failed attempt, neither a stale key set nor a first verification tries again
before the interval has passed, so a service that is down is not called on every token.

Every refresh is single-flight: concurrent callers share one fetch. A failed refresh
keeps the last good keys, so verification goes on while the service is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import MainmastError, UnauthenticatedError, UnavailableError
from mainmast.logging import get_logger

from ._jwks import KeySet, KeySetError
from ._verify import TokenVerifier, VerificationPolicy, VerifiedToken


@dataclass(frozen=True, slots=True)
class FetchedJwks:
    """One answer of the key source: the keys and how long they may be cached."""

    keys: KeySet
    """The verification keys."""
    max_age_seconds: float
    """How long the keys may be used before fetching again."""


JwksFetcher = Callable[[], Awaitable[FetchedJwks]]
"""Fetches the current JWKS; raises a MainmastError (or KeySetError) when it cannot."""

AsyncRevocationCheck = Callable[[str, VerifiedToken], Awaitable[bool]]
"""Given a token that verified locally (its text and claims), returns True when it is
revoked; may raise UnauthenticatedError with a more precise reason."""


class JwksCache:
    """Verifies tokens locally with keys from `fetch`, refreshed as the module describes.

    `clock` is monotonic seconds (tests pass their own); `verify_clock` is the wall clock
    the token times are compared with. Use inside one event loop; `await close()` ends a
    refresh still running.
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        policy: VerificationPolicy,
        *,
        min_refresh_interval_seconds: float = 30.0,
        revocation_check: AsyncRevocationCheck | None = None,
        clock: Callable[[], float] = time.monotonic,
        verify_clock: Callable[[], float] = time.time,
    ) -> None:
        if min_refresh_interval_seconds < 0:
            raise ValueError("min_refresh_interval_seconds is not negative")
        self._fetch = fetch
        self._policy = policy
        self._min_interval = min_refresh_interval_seconds
        self._revocation_check = revocation_check
        self._clock = clock
        self._verify_clock = verify_clock
        self._verifier: TokenVerifier | None = None
        self._expires_at = 0.0
        self._last_attempt_at: float | None = None
        self._last_unknown_key_refresh_at: float | None = None
        self._refresh_task: asyncio.Task[bool] | None = None
        self._fetches = 0
        self._log = get_logger(__name__)

    @property
    def keys(self) -> KeySet | None:
        """The key set in use, or None before the first successful fetch."""
        return None if self._verifier is None else self._verifier.keys

    @property
    def fetch_count(self) -> int:
        """How many fetches were started (for tests and metrics)."""
        return self._fetches

    async def load(self) -> None:
        """Fetch the keys now; raises what the fetch raised when no keys result."""
        self._last_attempt_at = self._clock()
        self._fetches += 1
        self.install(await self._fetch())

    def install(self, fetched: FetchedJwks) -> None:
        """Use `fetched` from now on (the first fetch may be made by the owner, e.g. with
        a longer deadline), for its max age."""
        if self._last_attempt_at is None:
            self._last_attempt_at = self._clock()
            self._fetches += 1
        if self._verifier is None:
            self._verifier = TokenVerifier(fetched.keys, self._policy, clock=self._verify_clock)
        else:
            self._verifier.replace_keys(fetched.keys)
        self._expires_at = self._clock() + max(0.0, fetched.max_age_seconds)

    async def refresh(self) -> bool:
        """Fetch the keys again now, sharing a fetch already running; whether it succeeded."""
        return await asyncio.shield(self._start_refresh())

    async def verify(self, token: str | bytes) -> VerifiedToken:
        """Verify `token` locally; UnauthenticatedError says which rule it broke.

        UnavailableError when no key set was ever fetched and the source cannot be reached.
        """
        verifier = self._verifier
        if verifier is None:
            verifier = await self._first_verifier()
        self._refresh_in_background_if_stale()
        try:
            verified = verifier.verify(token)
        except UnauthenticatedError as exc:
            if not await self._refreshed_for(exc):
                raise
            # The refresh replaced the keys of this same verifier.
            verified = verifier.verify(token)
        if self._revocation_check is not None:
            text = token.decode("ascii") if isinstance(token, bytes) else token
            if await self._revocation_check(text, verified):
                raise UnauthenticatedError(
                    "The token has been revoked.",
                    reason=AuthErrorReason.TOKEN_REVOKED.value,
                    domain=AUTH_ERROR_DOMAIN,
                )
        return verified

    async def close(self) -> None:
        """Stop a refresh still running."""
        task, self._refresh_task = self._refresh_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _first_verifier(self) -> TokenVerifier:
        if self._may_attempt():
            await self.refresh()
        elif self._refresh_task is not None and not self._refresh_task.done():
            await asyncio.shield(self._refresh_task)
        if self._verifier is None:
            raise UnavailableError(
                "No token verification keys yet: the auth service could not be reached."
            )
        return self._verifier

    async def _refreshed_for(self, exc: UnauthenticatedError) -> bool:
        # Only a well-formed kid that names no key can be a rotation we have not seen;
        # the verifier puts `key_id` in the metadata exactly then.
        if exc.reason != AuthErrorReason.TOKEN_KEY_UNKNOWN.value or "key_id" not in exc.metadata:
            return False
        if self._refresh_task is not None and not self._refresh_task.done():
            return await asyncio.shield(self._refresh_task)
        if not self._elapsed(self._last_unknown_key_refresh_at):
            return False
        self._last_unknown_key_refresh_at = self._clock()
        return await self.refresh()

    def _may_attempt(self) -> bool:
        return self._elapsed(self._last_attempt_at)

    def _elapsed(self, since: float | None) -> bool:
        return since is None or self._clock() - since >= self._min_interval

    def _refresh_in_background_if_stale(self) -> None:
        if self._clock() < self._expires_at or not self._may_attempt():
            return
        self._start_refresh()

    def _start_refresh(self) -> asyncio.Task[bool]:
        task = self._refresh_task
        if task is None or task.done():
            self._last_attempt_at = self._clock()
            self._fetches += 1
            task = asyncio.get_running_loop().create_task(self._fetch_and_install())
            self._refresh_task = task
        return task

    async def _fetch_and_install(self) -> bool:
        try:
            fetched = await self._fetch()
        except (MainmastError, KeySetError) as exc:
            # Keep verifying with the last good keys; the next attempt comes after the interval.
            self._log.warning(
                "auth.jwks_refresh_failed",
                error=type(exc).__name__,
                reason=getattr(exc, "reason", ""),
                have_keys=self._verifier is not None,
            )
            return False
        self.install(fetched)
        return True
