"""Fakes for testing the config core and what stands on it: a clock that moves when told
to, a backend that fails on command, credentials the local Key Vault accepts, and a config
service on 127.0.0.1 with a raw stub.

They ship with the product, as the local vault does, so that the servicer's tests and the
benchmarks use the same ones.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import grpc.aio
from azure.core.credentials import AccessToken

from mainmast.auth import AuthClient
from mainmast.config.v1 import config_service_pb2_grpc
from mainmast.runtime import ServiceServer

from ._backend import BackendKind, SecretRecord, versionless_record
from ._errors import secret_not_found
from ._local_key_vault import LOCAL_VAULT_TOKEN
from .service import ConfigService

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from ._backend import SecretBackend
    from .settings import ConfigSettings

WALL_CLOCK_START: Final = 1_750_000_000.0
"""The epoch time a FakeClock's `wall` reads at its start."""


class FakeClock:
    """Monotonic seconds that move only when told to; `wall` is the matching epoch time."""

    def __init__(self) -> None:
        self.now = 1000.0
        """The monotonic time, in seconds."""

    def __call__(self) -> float:
        """The monotonic time, in seconds."""
        return self.now

    def wall(self) -> float:
        """The epoch time matching `now`."""
        return WALL_CLOCK_START + self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class ScriptedBackend:
    """An in-memory backend that counts its calls, fails on command and can be held at a gate."""

    def __init__(self, kind: BackendKind, secrets: dict[str, str] | None = None) -> None:
        self._kind = kind
        self.secrets = dict(secrets or {})
        """The values by name; change them to rotate or delete a secret."""
        self.calls = 0
        """How many times `get` was called."""
        self.list_calls = 0
        """How many times `list_names` was called."""
        self.closed = False
        """Whether `aclose` was called."""
        self.failures: deque[BaseException] = deque()
        """Errors the next calls raise (a copy each), in order."""
        self.gate: asyncio.Event | None = None
        """When set to an event, `get` waits for it before answering."""

    @property
    def kind(self) -> BackendKind:
        """The kind this backend poses as."""
        return self._kind

    def fail_next(self, error: BaseException, *, count: int = 1) -> None:
        """Have the next `count` calls raise `error`."""
        self.failures.extend([error] * count)

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The value of `name`, after the gate, unless a failure is queued."""
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise copy.copy(self.failures.popleft())
        if name not in self.secrets:
            raise secret_not_found(name)
        return versionless_record(name, self.secrets[name], self._kind, version)

    async def list_names(self) -> list[str]:
        """The names held, unless a failure is queued."""
        self.list_calls += 1
        if self.failures:
            raise copy.copy(self.failures.popleft())
        return list(self.secrets)

    async def aclose(self) -> None:
        """Remember that the backend was closed."""
        self.closed = True


class VaultCredential:
    """An async Azure credential that hands out the local vault's token (or another)."""

    def __init__(self, token: str = LOCAL_VAULT_TOKEN) -> None:
        self.token = token
        """The token handed out."""
        self.scopes: list[tuple[str, ...]] = []
        """The scopes of every token asked for, in order."""
        self.closed = False
        """Whether `close` was called."""

    async def get_token(self, *scopes: str, **_options: Any) -> AccessToken:
        """A token valid for an hour."""
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        """Remember that the credential was closed."""
        self.closed = True

    async def __aenter__(self) -> VaultCredential:
        """The credential itself."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the credential."""
        await self.close()


class SyncVaultCredential:
    """A sync Azure credential that hands out the local vault's token."""

    def get_token(self, *_scopes: str, **_options: Any) -> AccessToken:
        """A token valid for an hour."""
        return AccessToken(LOCAL_VAULT_TOKEN, int(time.time()) + 3600)


def free_port() -> int:
    """A loopback port nothing listens on at the moment (for a server that must come back
    on the same port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata carrying `token` as a bearer token."""
    return (("authorization", f"Bearer {token}"),)


@dataclass(frozen=True)
class Callers:
    """A running auth service and access tokens of callers of each kind."""

    target: str
    """The auth service's address."""
    auth: AuthClient
    """A connected client of it."""
    admin: str = field(repr=False)
    """A user of tenants/acme holding roles/platform-admin."""
    payments: str = field(repr=False)
    """The service account tenants/acme/serviceAccounts/payments-api."""
    member: str = field(repr=False)
    """A user of tenants/acme with the member role."""
    outsider: str = field(repr=False)
    """A user of tenants/globex with the member role."""
    payments_client_id: str
    """The payments service account's client id."""
    payments_client_secret: str = field(repr=False)
    """Its client secret."""


@dataclass(frozen=True)
class RunningConfig:
    """A config service on 127.0.0.1 and a raw stub on it."""

    service: ConfigService
    """The service."""
    server: ServiceServer
    """Its server."""
    stub: config_service_pb2_grpc.ConfigServiceAsyncStub
    """A stub on a channel of its own."""

    @property
    def target(self) -> str:
        """The service's address."""
        return f"127.0.0.1:{self.server.port}"


@asynccontextmanager
async def serve_config_service(
    settings: ConfigSettings,
    *,
    backends: Sequence[SecretBackend] | None = None,
    key_vault_credential: AsyncTokenCredential | None = None,
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[RunningConfig]:
    """Run a config service with `settings` (its env backend reading `environ`, by default
    an empty environment), and a stub on it, until the block ends."""
    service = ConfigService(
        settings,
        backends=backends,
        key_vault_credential=key_vault_credential,
        environ={} if environ is None else environ,
    )
    async with ServiceServer(service) as server:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            stub = config_service_pb2_grpc.ConfigServiceStub(channel)
            yield RunningConfig(service, server, stub)
        finally:
            await channel.close(None)
