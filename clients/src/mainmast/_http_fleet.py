"""The fleet's clients of a FastAPI application, made in its lifespan and kept on `app.state`.

grpc.aio channels belong to the event loop that made them, so the clients are made when
the application starts, never when it is imported: `FastAPI(lifespan=fleet.lifespan)`, or
`async with fleet.connect(app) as clients:` inside the application's own lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request

from mainmast.auth import AuthClient, AuthClientConfig, ServiceAccountTokens
from mainmast.config import ConfigClient, ConfigClientConfig
from mainmast.errors import DeadlineExceededError, UnavailableError
from mainmast.logging import get_logger

# The attribute of `app.state` that holds the connected clients.
_STATE_ATTRIBUTE: Final = "mainmast_fleet"


@dataclass(frozen=True, slots=True)
class FleetClients:
    """The connected clients of a running application; see `Fleet`."""

    auth: AuthClient
    """Verifies callers' tokens locally and asks the auth service for permission decisions."""
    config: ConfigClient
    """Reads secrets and settings as the application's own service account."""
    service_account: ServiceAccountTokens | None
    """The application's own access tokens, to call other services as itself (for example
    `LlmClient(bearer_token=clients.service_account)`); None without a service account."""

    @classmethod
    def of(cls, app: Starlette) -> FleetClients:
        """The clients `Fleet.connect` (or `Fleet.lifespan`) left on `app`.

        RuntimeError when the application was not started with them: a mistake in its
        code, answered as any unexpected error (500, logged).
        """
        clients: FleetClients | None = getattr(app.state, _STATE_ATTRIBUTE, None)
        if clients is None:
            raise RuntimeError(
                "the application has no fleet clients: create it with "
                "FastAPI(lifespan=fleet.lifespan), or enter `fleet.connect(app)` in its "
                "own lifespan"
            )
        return clients


@dataclass(frozen=True, slots=True)
class Fleet:
    """The fleet services a FastAPI application uses, and its own credentials for them.

    ::

        fleet = Fleet(
            auth=AuthClientConfig(target="auth:50051"),
            config=ConfigClientConfig(target="config:50052"),
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )
        app = FastAPI(lifespan=fleet.lifespan)

    Callers are authenticated by their own tokens, verified locally against the auth
    service's keys (`CurrentUser`), and their permissions decided by the auth service
    (`require_permission`). Secrets (`Secret`) are read as the application itself: the
    service account `client_id`, whose tokens the auth service grants and the fleet renews
    before they expire. A caller's token is never used for that: what the application may
    read is decided by the config service's access policy for the application, not by
    whoever happens to call, and the config client's cache serves every caller alike.
    Frozen: declare one at import time, it connects nothing until the application starts.
    """

    auth: AuthClientConfig = field(default_factory=AuthClientConfig)
    """How the auth service is reached and its tokens verified (issuer, audience, ...)."""
    config: ConfigClientConfig = field(default_factory=ConfigClientConfig)
    """How the config service is reached, and how long the client caches its values."""
    client_id: str | None = None
    """The client id of the application's service account; None: the application calls
    the config service without a token (one running with `auth_required=false`)."""
    client_secret: SecretStr | None = None
    """That service account's client secret; set with `client_id`, or neither."""

    def __post_init__(self) -> None:
        has_id = bool(self.client_id)
        has_secret = self.client_secret is not None and bool(self.client_secret.get_secret_value())
        if has_id != has_secret:
            raise ValueError(
                "set both client_id and client_secret of a service account, or neither"
            )

    @asynccontextmanager
    async def connect(self, app: Starlette) -> AsyncIterator[FleetClients]:
        """Connect the clients, keep them on `app.state` for the dependencies, and close
        them when the block ends.

        The auth client fetches the auth service's keys first, waiting for the service up
        to `auth.connect_timeout_seconds`: an application that cannot verify a token does
        not start (UnavailableError, DeadlineExceededError), and its orchestrator starts it
        again. The config client connects on its first read, so the application starts
        while the config service is down.
        """
        async with AsyncExitStack() as stack:
            auth = AuthClient(config=self.auth)
            await auth.connect()
            stack.push_async_callback(auth.close)
            service_account = None
            if self.client_id and self.client_secret is not None:
                service_account = ServiceAccountTokens(
                    auth, client_id=self.client_id, client_secret=self.client_secret
                )
                stack.push_async_callback(service_account.close)
            config = ConfigClient(token=service_account, config=self.config)
            await config.connect()
            stack.push_async_callback(config.close)
            clients = FleetClients(auth=auth, config=config, service_account=service_account)
            setattr(app.state, _STATE_ATTRIBUTE, clients)
            stack.callback(delattr, app.state, _STATE_ATTRIBUTE)
            yield clients

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """`connect(app)` as a lifespan of its own: `FastAPI(lifespan=fleet.lifespan)`."""
        async with self.connect(app):
            yield


async def fleet_clients(request: Request) -> FleetClients:
    """The dependency that gives a route the application's connected fleet clients.

    ::

        @app.get("/settings/checkout")
        async def checkout(clients: Annotated[FleetClients, Depends(fleet_clients)]) -> int:
            return await clients.config.get_setting("checkout.max-items", int)
    """
    return FleetClients.of(request.app)


def unreachable(service: str, error: UnavailableError | DeadlineExceededError) -> UnavailableError:
    """What a caller is told when a fleet service its request needs does not answer: 503,
    with the service's retry delay when it gave one, and nothing of gRPC's own message
    (which names addresses inside the deployment); the whole error is logged."""
    get_logger(__name__).warning(
        "fleet.service_unreachable",
        service=service,
        reason=error.reason,
        detail=error.message,
    )
    return UnavailableError(
        "A service this request depends on is not answering; try again shortly.",
        retry_after=error.retry_after,
    )
