"""A service account's own access tokens: the client credentials grant, renewed in time.

A process that calls the fleet as itself (an application reading its secrets from the config
service, a service calling another) needs a current access token before each call.
`ServiceAccountTokens` is that token provider (`ConfigClient(token=...)`,
`LlmClient(bearer_token=...)`). It keeps the token it was granted until a quarter of the
token's life is left, then asks the auth service for a new one, so a token never expires in
flight; `forget()` drops it sooner, when a service refused it (its signing key was retired,
it was revoked).
However many calls need a token at once, one grant is made for all of them.

The client secret stays a `SecretStr` until the grant's request is built, and the tokens
never leave this object but as the provider's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from pydantic import SecretStr

from mainmast.errors import UnauthenticatedError

from ._client import AuthClient
from ._results import TokenPair

# The share of a token's life after which it is renewed: late enough to make few grants,
# early enough that a token handed out is still good when its call arrives.
_RENEW_AFTER_LIFE_FRACTION: Final = 0.75


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ServiceAccountTokens:
    """Access tokens of the service account `client_id`, granted by the auth service `auth`.

    ::

        tokens = ServiceAccountTokens(auth, client_id="orders-api", client_secret=secret)
        config = ConfigClient("config:50052", token=tokens)

    Call the object for a current token: UnauthenticatedError when the auth service refuses
    the credentials, UnavailableError (or DeadlineExceededError) when it cannot be reached;
    a failure is not kept, the next call asks again. `auth` is connected on first use when
    it is not already, and stays the caller's to close. `clock` (aware UTC datetimes) is
    injectable for tests.
    """

    def __init__(
        self,
        auth: AuthClient,
        *,
        client_id: str,
        client_secret: SecretStr,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not client_id or not client_secret.get_secret_value():
            raise ValueError("a service account needs a client id and a client secret")
        self._auth = auth
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: TokenPair | None = None
        self._renew_at: datetime | None = None
        self._grant: asyncio.Task[TokenPair] | None = None
        self._grants = 0

    @property
    def client_id(self) -> str:
        """The service account's client id."""
        return self._client_id

    @property
    def grants(self) -> int:
        """How many tokens were granted so far."""
        return self._grants

    async def __call__(self) -> str:
        """A token good for a while yet (see the class)."""
        token, renew_at = self._token, self._renew_at
        if token is not None and renew_at is not None and self._clock() < renew_at:
            return token.access_token
        grant = self._grant
        if grant is None:
            grant = asyncio.create_task(self._obtain(), name="service-account-token")
            self._grant = grant
            grant.add_done_callback(self._granted)
        # Shielded: one caller giving up (cancelled) does not cancel the others' grant.
        return (await asyncio.shield(grant)).access_token

    def forget(self) -> None:
        """Drop the token held: the next call is granted a new one."""
        self._token = None
        self._renew_at = None

    async def close(self) -> None:
        """Stop a grant in flight and drop the token (the auth client is left open)."""
        grant, self._grant = self._grant, None
        if grant is not None:
            grant.cancel()
            await asyncio.gather(grant, return_exceptions=True)
        self.forget()

    async def _obtain(self) -> TokenPair:
        await self._auth.connect()  # returns at once when connected
        try:
            token = await self._auth.client_credentials(
                self._client_id, self._client_secret.get_secret_value()
            )
        except UnauthenticatedError as exc:
            raise UnauthenticatedError(
                f"The auth service refused the credentials of the service account "
                f"{self._client_id!r}: {exc.message}",
                reason=exc.reason,
                domain=exc.domain,
                metadata={**exc.metadata, "client_id": self._client_id},
            ) from exc
        now = self._clock()
        self._token = token
        self._renew_at = now + (token.expire_time - now) * _RENEW_AFTER_LIFE_FRACTION
        self._grants += 1
        return token

    def _granted(self, grant: asyncio.Task[TokenPair]) -> None:
        if self._grant is grant:
            self._grant = None
        if not grant.cancelled():
            # Retrieved, so that a grant whose every caller gave up is not reported as an
            # exception never retrieved; the callers that stayed got it already.
            grant.exception()

    def __repr__(self) -> str:
        return f"ServiceAccountTokens(client_id={self._client_id!r})"
