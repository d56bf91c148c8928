"""The auth service as the runtime runs it: what it serves and how it is registered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final

import grpc.aio

from mainmast.auth import bearer_token
from mainmast.auth.v1 import auth_service_pb2_grpc
from mainmast.db import DatabasePool
from mainmast.runtime import Authenticate, Metadata, Principal, Service

from ._access_state_sync import AccessStateSync
from ._admin_service import AdminService
from ._bootstrap import bootstrap_on_start
from ._decision_service import DecisionService
from ._keys import SigningAlgorithm
from ._passwords import PasswordHasher
from ._policy_sync import PolicySync
from ._servicer import AuthServicer
from ._servicer_keys import signing_keys
from ._store_migrations import migrate_database
from ._token_service import TokenService, TokenSettings
from .settings import AuthSettings

_SERVICE: Final = "/mainmast.auth.v1.AuthService/"


def _token_settings(settings: AuthSettings) -> TokenSettings:
    return TokenSettings(
        issuer=settings.issuer,
        audience=settings.audience,
        access_token_lifetime=timedelta(seconds=settings.access_token_lifetime_seconds),
        algorithm=SigningAlgorithm(settings.signing_algorithm),
        leeway=timedelta(seconds=settings.token_leeway_seconds),
        jwks_max_age=timedelta(seconds=settings.jwks_max_age_seconds),
    )


class AuthService(Service[AuthSettings]):
    """`mainmast.auth.v1.AuthService` in one process.

    `startup()` opens the database named by the settings, brings its schema up to date,
    loads the signing keys (generating the first one on a fresh install), the policy and
    the access state (revocations, disabled tenants and principals), whose versions it
    then polls so other replicas' changes reach it; `shutdown()` stops the polling and
    closes the database. Every call but GetJwks and IssueToken is authenticated with a
    bearer access token, verified as IntrospectToken verifies it, from memory.
    """

    name: ClassVar[str] = "auth"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.auth.v1.AuthService",)
    exempt_methods: ClassVar[frozenset[str]] = frozenset(
        {_SERVICE + "GetJwks", _SERVICE + "IssueToken"}
    )

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        self._database: DatabasePool | None = None
        self._tokens: TokenService | None = None
        self._policy: PolicySync | None = None
        self._access: AccessStateSync | None = None
        self._hasher: PasswordHasher | None = None

    @property
    def tokens(self) -> TokenService:
        """The token endpoints' logic; RuntimeError outside startup..shutdown."""
        if self._tokens is None:
            raise RuntimeError("the auth service's tokens exist only between startup and shutdown")
        return self._tokens

    @property
    def policy(self) -> PolicySync:
        """The synced authorizer; RuntimeError outside startup..shutdown."""
        if self._policy is None:
            raise RuntimeError("the auth service's policy exists only between startup and shutdown")
        return self._policy

    @property
    def access(self) -> AccessStateSync:
        """The synced access state; RuntimeError outside startup..shutdown."""
        if self._access is None:
            raise RuntimeError(
                "the auth service's access state exists only between startup and shutdown"
            )
        return self._access

    @property
    def database(self) -> DatabasePool:
        """The service's database pool; RuntimeError before `startup()` or after `shutdown()`."""
        if self._database is None:
            raise RuntimeError(
                "the auth service's database is open only between startup and shutdown"
            )
        return self._database

    async def startup(self) -> None:
        """Open the database, apply pending migrations, load or create the signing keys,
        create the first platform admin from the settings (or log how to)."""
        database = DatabasePool(self.settings.database_target())
        policy: PolicySync | None = None
        access: AccessStateSync | None = None
        try:
            await migrate_database(database)
            await database.start()
            token_settings = _token_settings(self.settings)
            ring, cipher = await signing_keys(database, self.settings, now=datetime.now(UTC))
            # Building the hasher hashes a random password once (its unknown-user path).
            hasher = await asyncio.to_thread(
                PasswordHasher, self.settings.password_hash_parameters()
            )
            # Before the policy loads, so a platform admin created here is in it.
            await bootstrap_on_start(database, hasher, self.settings)
            policy = PolicySync(database)
            await policy.start()
            access = AccessStateSync(
                database,
                token_lifetime=token_settings.access_token_lifetime,
                leeway=token_settings.leeway,
            )
            await access.start()
        except BaseException:
            for sync in (access, policy):
                if sync is not None:
                    await sync.stop()
            await database.close()
            raise
        self._database = database
        self._policy = policy
        self._access = access
        self._hasher = hasher
        self._tokens = TokenService(
            database,
            cipher,
            ring,
            token_settings,
            hasher=hasher,
            policy=policy,
            access=access,
            login_limits=self.settings.login_limits(),
        )

    def register(self, server: grpc.aio.Server) -> None:
        """Add the AuthService servicer to `server`."""
        if self._hasher is None:
            raise RuntimeError("register the auth service after its startup")
        policy = self.policy
        servicer = AuthServicer(
            self.tokens,
            decisions=DecisionService(policy),
            admin=AdminService(self.database, policy, self._hasher, access=self.access),
        )
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)

    def authenticator(self) -> Authenticate | None:
        """Authenticate callers by their bearer access token."""
        return self._authenticate

    async def _authenticate(self, method: str, metadata: Metadata) -> Principal:
        token = bearer_token(metadata)
        verified = await self.tokens.verify(token)
        return Principal(
            tenant=verified.tenant or "",
            subject=verified.subject,
            roles=verified.roles,
            credential=token,
        )

    async def shutdown(self) -> None:
        """Stop the policy and access-state polling and close the database pool."""
        self._tokens = None
        access, self._access = self._access, None
        if access is not None:
            await access.stop()
        policy, self._policy = self._policy, None
        if policy is not None:
            await policy.stop()
        database, self._database = self._database, None
        if database is not None:
            await database.close()
