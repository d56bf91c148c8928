"""Provider keys from the config service: a `SecretSource` over `mainmast.config.ConfigClient`.

Every read goes through the client's cache, so a key asked for at every provider call costs
a call to the config service only when its entry expires (never later than the service's own
entry would). One watch over the secrets the routing file names keeps that cache current: a
rotation reaches the next provider call as soon as the config service sees it, not when the
entry expires. The watch reconnects by itself; should it end (the access policy lets the llm
service read a name but not watch it, say), it is opened again a minute later, and expiring
entries bring rotations in meanwhile.

The llm service calls as its own service account (`ServiceAccountTokens`), or with no token
for a config service that runs `auth_required=false`. Nothing here waits for the config
service at start: the channel connects on the first call, so the service starts while the
config service is down, a read then fails with UnavailableError, and the next read tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from contextlib import aclosing
from typing import Final

from mainmast.auth import AuthClient, ServiceAccountTokens
from mainmast.config import ConfigClient, ConfigClientConfig
from mainmast.errors import MainmastError, UnauthenticatedError
from mainmast.logging import get_logger

from .settings import LlmSettings

WATCH_RESTART_SECONDS: Final = 60.0
"""How long after the watch ended for good it is opened again."""

# gRPC's own backoff grows to two minutes between attempts to reach a service that was down;
# a key read on a channel that is backing off fails without trying, so the wait is capped
# to let provider calls resume soon after the config service is back.
_CHANNEL_OPTIONS: Final = (("grpc.max_reconnect_backoff_ms", 5_000),)


class ConfigServiceSecrets:
    """The secrets of the config service as a SecretSource; see the module docstring.

    `client` reads them (its token provider is `tokens`, when there is one, granted by the
    auth client `auth`); `watched` are the names to follow through rotations. `start()`
    connects and begins watching, `close()` stops both and closes the clients.
    """

    def __init__(
        self,
        client: ConfigClient,
        *,
        watched: Iterable[str] = (),
        tokens: ServiceAccountTokens | None = None,
        auth: AuthClient | None = None,
        watch_restart_seconds: float = WATCH_RESTART_SECONDS,
    ) -> None:
        self._client = client
        self._watched = sorted(set(watched))
        self._tokens = tokens
        self._auth = auth
        self._watch_restart_seconds = watch_restart_seconds
        self._watching: asyncio.Task[None] | None = None
        self._logger = get_logger("mainmast_llm.config_secrets")

    @classmethod
    def from_settings(
        cls, settings: LlmSettings, *, watched: Iterable[str] = ()
    ) -> ConfigServiceSecrets:
        """The config service at `settings.config_target`, called as the service account of
        `config_client_id` (tokens from the auth service at `auth_target`), or without a
        token when no client id is set."""
        if not settings.config_target:
            raise ValueError("config_target is empty: there is no config service to read")
        tokens = auth = None
        if settings.config_client_id and settings.config_client_secret is not None:
            auth = AuthClient(config=settings.auth_client_config())
            tokens = ServiceAccountTokens(
                auth,
                client_id=settings.config_client_id,
                client_secret=settings.config_client_secret,
            )
        client = ConfigClient(
            token=tokens,
            config=ConfigClientConfig(
                target=settings.config_target, channel_options=_CHANNEL_OPTIONS
            ),
        )
        return cls(client, watched=watched, tokens=tokens, auth=auth)

    @property
    def target(self) -> str:
        """The config service's address."""
        return self._client.config.target

    @property
    def authenticated(self) -> bool:
        """Whether calls carry the service account's token (False: no token at all)."""
        return self._tokens is not None

    async def start(self) -> None:
        """Open the client's channel and begin watching; returns at once."""
        await self._client.connect()
        if self._watched and self._watching is None:
            self._watching = asyncio.create_task(
                self._follow_rotations(), name="llm-provider-key-watch"
            )

    async def close(self) -> None:
        """Stop watching, close the client, then the tokens' auth client."""
        watching, self._watching = self._watching, None
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        await self._client.close()
        if self._tokens is not None:
            await self._tokens.close()
        if self._auth is not None:
            await self._auth.close()

    async def get_secret(self, name: str) -> str:
        """The latest value of the secret `name`; the taxonomy's errors as the client raises
        them (NotFoundError, PermissionDeniedError, UnavailableError, ...)."""
        try:
            return (await self._client.get_secret(name)).value
        except UnauthenticatedError as exc:
            if self._tokens is None:
                raise UnauthenticatedError(
                    "The config service wants an access token and the llm service has no "
                    "credentials: set MAINMAST_LLM_CONFIG_CLIENT_ID and "
                    "MAINMAST_LLM_CONFIG_CLIENT_SECRET to a service account's.",
                    reason=exc.reason,
                    domain=exc.domain,
                    metadata={**exc.metadata, "config_target": self.target},
                ) from exc
            if "client_id" in exc.metadata:
                raise _credentials_refused(exc) from exc
            # The token held was refused (revoked, or signed by a key the config service
            # no longer trusts) although it had life left: once more, with a new one.
            self._tokens.forget()
        try:
            return (await self._client.get_secret(name)).value
        except UnauthenticatedError as exc:
            if "client_id" in exc.metadata:
                raise _credentials_refused(exc) from exc
            raise

    async def _follow_rotations(self) -> None:
        """Keep the client's cache current through the watch; see the module docstring."""
        while True:
            try:
                async with aclosing(self._client.watch(self._watched)) as changes:
                    async for change in changes:
                        # The watch has already refreshed the client's cache.
                        self._logger.info(
                            "llm.provider_key_received",
                            secret_name=change.name,
                            change_type=change.change_type.value,
                        )
            except MainmastError as exc:
                self._logger.warning(
                    "llm.provider_key_watch_ended",
                    config_target=self.target,
                    reason=exc.reason,
                    detail=exc.message,
                    retry_in_seconds=self._watch_restart_seconds,
                )
            await asyncio.sleep(self._watch_restart_seconds)

    def __repr__(self) -> str:
        return f"ConfigServiceSecrets(target={self.target!r}, authenticated={self.authenticated})"


def _credentials_refused(exc: UnauthenticatedError) -> UnauthenticatedError:
    """The auth service's refusal of the service account (ServiceAccountTokens names it in
    `client_id`), saying which of this service's settings to check."""
    return UnauthenticatedError(
        f"{exc.message} Check MAINMAST_LLM_CONFIG_CLIENT_ID and MAINMAST_LLM_CONFIG_CLIENT_SECRET.",
        reason=exc.reason,
        domain=exc.domain,
        metadata=exc.metadata,
    )
