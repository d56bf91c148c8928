"""Caller authentication for services other than auth: settings and lifecycle, written once.

The config and llm services (and an application's own gRPC services) authenticate every
caller by a mainmast access token, verified locally from the auth service's JWKS, and ask
the auth service's Check for permissions. `CallerAuthSettings` holds what that needs;
`CallerAuthentication` owns the AuthClient for the life of the service.

A service must start even when the auth service is not up yet (the fleet starts all at
once; Kubernetes starts pods in any order), so the client connects in the background
with backoff. Until the keys arrive, a call waits briefly for them and is then refused
with UNAVAILABLE, never let through.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from pydantic import Field

from mainmast.errors import DeadlineExceededError, UnavailableError
from mainmast.logging import get_logger
from mainmast.runtime import Authenticate, Metadata, Principal, ServiceSettings

from ._authenticator import require_permission, token_authenticator
from ._client import AuthClient, AuthClientConfig

DEV_PRINCIPAL: Final = Principal(
    tenant="tenants/dev", subject="tenants/dev/users/unauthenticated-dev-caller"
)
"""Who every caller is when a service runs with `auth_required=False`: named so that
nobody mistakes it, in logs, ledgers and audits, for an authenticated caller."""

_RECONNECT_MIN_SECONDS: Final = 0.2
_RECONNECT_MAX_SECONDS: Final = 5.0


class CallerAuthSettings(ServiceSettings):
    """Settings of a service whose callers authenticate with mainmast access tokens.

    A service's settings subclass this instead of `ServiceSettings`; the fields then read
    `MAINMAST_<SERVICE>_AUTH_TARGET` and so on.
    """

    auth_target: str = Field(default="127.0.0.1:50051", min_length=1)
    """The auth service's gRPC address, HOST:PORT, whose JWKS verifies callers' tokens."""

    auth_issuer: str = Field(default="mainmast-auth", min_length=1)
    """The `iss` callers' tokens must carry: the auth service's `issuer` setting."""

    auth_audience: str = Field(default="mainmast", min_length=1)
    """The `aud` callers' tokens must carry: the auth service's `audience` setting."""

    auth_required: bool = True
    """False lets every call through as the dev principal, unauthenticated and allowed
    everything: for experiments on one machine only, and logged loudly at start."""

    auth_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    """How long a call waits for the auth service's keys while they have not arrived
    yet (at start), before it is refused with UNAVAILABLE."""

    auth_decision_cache_ttl_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long a permission decision of the auth service is reused; 0 asks every time."""

    def auth_client_config(self) -> AuthClientConfig:
        """The AuthClient configuration these settings describe."""
        return AuthClientConfig(
            target=self.auth_target,
            issuer=self.auth_issuer,
            audience=self.auth_audience,
            decision_cache_ttl_seconds=self.auth_decision_cache_ttl_seconds,
            # Short, because the background connect retries: a long wait would only delay
            # the warning that the auth service is not answering.
            connect_timeout_seconds=3.0,
        )


class CallerAuthentication:
    """Authenticates a service's callers and checks their permissions.

    ::

        callers = CallerAuthentication(settings)
        await callers.start()                  # in the service's startup()
        authenticate = callers.authenticator() # the runtime hook
        await callers.require(current_principal(), "llm:complete")
        await callers.close()                  # in its shutdown()

    `client` replaces the AuthClient the settings describe (tests, embedding).
    """

    def __init__(self, settings: CallerAuthSettings, *, client: AuthClient | None = None) -> None:
        self._required = settings.auth_required
        self._wait_seconds = settings.auth_wait_seconds
        self._client = client or AuthClient(config=settings.auth_client_config())
        self._target = self._client.config.target
        self._ready = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self._logger = get_logger("mainmast.auth.callers")

    @property
    def required(self) -> bool:
        """Whether callers must present a valid token (False: the dev principal)."""
        return self._required

    @property
    def client(self) -> AuthClient:
        """The AuthClient that verifies tokens and asks for decisions."""
        return self._client

    async def start(self) -> None:
        """Begin connecting to the auth service in the background (returns at once)."""
        if not self._required:
            self._logger.warning(
                "auth.callers_unauthenticated",
                detail="auth_required is off: every caller is the dev principal, allowed all",
                tenant=DEV_PRINCIPAL.tenant,
                subject=DEV_PRINCIPAL.subject,
            )
            return
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect(), name="auth-client-connect")

    async def close(self) -> None:
        """Stop connecting and close the client."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
        self._ready.clear()
        await self._client.close()

    def authenticator(self) -> Authenticate:
        """The runtime hook: the caller's Principal from its bearer token."""
        if not self._required:
            return _authenticate_as_dev_principal
        verify = token_authenticator(self._client)

        async def authenticate(method: str, metadata: Metadata) -> Principal:
            await self._wait_until_ready()
            return await verify(method, metadata)

        return authenticate

    async def require(self, principal: Principal, permission: str) -> None:
        """PermissionDeniedError unless `principal` holds `permission` in its tenant."""
        if not self._required:
            return
        await self._wait_until_ready()
        await require_permission(self._client, principal, permission)

    async def _wait_until_ready(self) -> None:
        if self._ready.is_set():
            return
        if self._connecting is None:
            raise RuntimeError("CallerAuthentication.start() has not run")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=self._wait_seconds)
        if not self._ready.is_set():
            raise UnavailableError(
                "Callers cannot be authenticated yet: the auth service's keys have not arrived.",
                metadata={"auth_target": self._target},
            )

    async def _connect(self) -> None:
        delay = _RECONNECT_MIN_SECONDS
        reported = False
        while True:
            try:
                await self._client.connect()
            except (UnavailableError, DeadlineExceededError) as exc:
                if not reported:
                    self._logger.warning(
                        "auth.keys_unavailable",
                        auth_target=self._target,
                        error=str(exc),
                        detail="calls are refused UNAVAILABLE until the auth service answers",
                    )
                    reported = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_SECONDS)
                continue
            self._ready.set()
            self._logger.info("auth.keys_ready", auth_target=self._target)
            return


async def _authenticate_as_dev_principal(method: str, metadata: Metadata) -> Principal:
    return DEV_PRINCIPAL
