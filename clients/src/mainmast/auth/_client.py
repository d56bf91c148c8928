"""`AuthClient`: the typed async face of `mainmast.auth.v1.AuthService`.

One grpc.aio channel per client, made by `connect()` (or `async with`) inside the event
loop that uses it; in a FastAPI application, in the lifespan. Tokens are verified
locally against a cached JWKS (`JwksCache`); permission decisions are cached for a few
seconds in a bounded LRU. Every failure arrives as a `mainmast.errors` class with the
service's reason; results are frozen dataclasses, never protobuf messages.

Calls other than the token grants and the JWKS are authenticated by the service: they
take the caller's access token as `bearer_token`, sent as `authorization: Bearer ...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import grpc
import grpc.aio

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast._grpc_client import GrpcClient, check_client_config
from mainmast.errors import InternalError, UnauthenticatedError, ValidationError

from ._jwks import ASYMMETRIC_ALGORITHMS, KeySet
from ._jwks_cache import AsyncRevocationCheck, FetchedJwks, JwksCache
from ._results import (
    CreatedServiceAccount,
    Introspection,
    KeyRotation,
    Page,
    RoleAssignment,
    RolePermission,
    ServiceAccount,
    SigningKeyInfo,
    Tenant,
    TokenPair,
    User,
)
from ._ttl_cache import TtlLruCache
from ._verify import VerificationPolicy, VerifiedToken
from .v1 import auth_service_pb2, auth_service_pb2_grpc, resources_pb2

MAX_BATCH_CHECKS: Final = 1000
"""BatchCheck takes at most this many checks; `check_many` splits longer lists."""

DEFAULT_JWKS_MAX_AGE_SECONDS: Final = 300.0
"""How long keys are kept when the service announces no max age."""


@dataclass(frozen=True, slots=True)
class AuthClientConfig:
    """How an AuthClient reaches the auth service and verifies tokens. Frozen: share one."""

    target: str = "127.0.0.1:50051"
    """The auth service's gRPC address, HOST:PORT (any grpc target string)."""
    issuer: str = "mainmast-auth"
    """The `iss` access tokens must carry: the service's `issuer` setting."""
    audience: str = "mainmast"
    """The `aud` access tokens must carry: the service's `audience` setting."""
    algorithms: frozenset[str] = ASYMMETRIC_ALGORITHMS
    """The token signing algorithms accepted locally."""
    strict_audience: bool = True
    """When True, a token whose `aud` lists other audiences besides ours is refused."""
    leeway_seconds: float = 30.0
    """Clock skew tolerated on `exp`, `nbf` and `iat` when verifying locally."""
    call_timeout_seconds: float = 5.0
    """Deadline of each call to the service."""
    connect_timeout_seconds: float = 10.0
    """How long `connect()` waits for the service to answer its first JWKS request."""
    jwks_min_refresh_interval_seconds: float = 30.0
    """At most one JWKS fetch per this interval for unknown key ids or stale keys."""
    revocation_check: Literal["off", "introspect"] = "off"
    """With `introspect`, `verify` also asks the service whether the token is still active
    (answers cached for `decision_cache_ttl_seconds`); with `off`, local verification only."""
    decision_cache_ttl_seconds: float = 5.0
    """How long a permission decision (and a revocation answer) is reused; 0 turns it off."""
    decision_cache_max_entries: int = 10_000
    """The most decisions kept; the least recently used go first."""
    channel_credentials: grpc.ChannelCredentials | None = field(default=None, compare=False)
    """TLS credentials for the channel; None for a plaintext channel (loopback, mesh)."""
    channel_options: tuple[tuple[str, str | int], ...] = ()
    """Extra grpc channel options, e.g. `(("grpc.keepalive_time_ms", 30000),)`."""

    def __post_init__(self) -> None:
        check_client_config(self, "auth", "call_timeout_seconds", "connect_timeout_seconds")
        for name in ("jwks_min_refresh_interval_seconds", "decision_cache_ttl_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is not negative")
        if self.decision_cache_max_entries < 0:
            raise ValueError("decision_cache_max_entries is not negative")
        if self.revocation_check not in ("off", "introspect"):
            raise ValueError('revocation_check is "off" or "introspect"')
        # Validates issuer, audience, algorithms and leeway in one place.
        self.verification_policy()

    def verification_policy(self) -> VerificationPolicy:
        """The local verification policy these settings describe."""
        return VerificationPolicy(
            issuer=self.issuer,
            audience=self.audience,
            algorithms=self.algorithms,
            leeway_seconds=self.leeway_seconds,
            strict_audience=self.strict_audience,
        )


@dataclass(frozen=True, slots=True)
class CheckQuery:
    """One question for `check_many`: may `principal` do `permission` in `tenant`?"""

    principal: str
    """Resource name of the user or service account (a token's `sub`)."""
    tenant: str
    """Resource name of the tenant the action happens in."""
    permission: str
    """The permission, "resource:action"."""


# The async stub type exists only in the generated .pyi, hence the string.
class AuthClient(GrpcClient[AuthClientConfig, "auth_service_pb2_grpc.AuthServiceAsyncStub"]):
    """Async client of the auth service; see the module docstring.

    ::

        async with AuthClient("auth:50051") as auth:
            tokens = await auth.login("tenants/acme", "alice", password)
            claims = await auth.verify(tokens.access_token)

    `connect()` fetches the JWKS, waiting up to `connect_timeout_seconds`: UnavailableError
    (or DeadlineExceededError) when the service does not answer.

    `revocation_check`, when given, is called after each successful local verification
    with the token and its claims and returns True for a revoked token (it overrides
    `config.revocation_check`).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        config: AuthClientConfig | None = None,
        revocation_check: AsyncRevocationCheck | None = None,
    ) -> None:
        super().__init__(
            config or AuthClientConfig(), target, new_stub=auth_service_pb2_grpc.AuthServiceStub
        )
        config = self._config
        self._revocation_callback = revocation_check
        self._jwks: JwksCache | None = None
        self._decisions: TtlLruCache[CheckQuery, bool] = TtlLruCache(
            ttl_seconds=config.decision_cache_ttl_seconds,
            max_entries=config.decision_cache_max_entries,
        )
        self._revoked: TtlLruCache[str, bool] = TtlLruCache(
            ttl_seconds=config.decision_cache_ttl_seconds,
            max_entries=config.decision_cache_max_entries,
        )

    @property
    def keys(self) -> KeySet | None:
        """The verification keys in use; None before `connect()`."""
        return None if self._jwks is None else self._jwks.keys

    @property
    def key_fetches(self) -> int:
        """How many JWKS fetches this connection started, the first one included."""
        return 0 if self._jwks is None else self._jwks.fetch_count

    # -- lifecycle ---------------------------------------------------------------------

    async def _ready(self, channel: grpc.aio.Channel) -> None:
        """Fetch the JWKS, waiting up to `connect_timeout_seconds` for the service."""
        config = self._config
        revocation_check = self._revocation_callback
        if revocation_check is None and config.revocation_check == "introspect":
            revocation_check = self._introspected_revocation
        jwks = JwksCache(
            self._fetch_jwks,
            config.verification_policy(),
            min_refresh_interval_seconds=config.jwks_min_refresh_interval_seconds,
            revocation_check=revocation_check,
        )
        jwks.install(
            await self._fetch_jwks(
                wait_for_ready=True, deadline_seconds=config.connect_timeout_seconds
            )
        )
        self._jwks = jwks

    async def close(self) -> None:
        """Stop a JWKS refresh in flight and close the channel; the client can connect again."""
        jwks, self._jwks = self._jwks, None
        if jwks is not None:
            await jwks.close()
        await super().close()
        self._decisions.clear()
        self._revoked.clear()

    # -- tokens ------------------------------------------------------------------------

    async def login(
        self, tenant: str, username: str, password: str, *, scopes: Sequence[str] = ()
    ) -> TokenPair:
        """Password grant: an access token and a refresh token for a user of `tenant`.

        Unknown users and wrong passwords fail alike: UnauthenticatedError
        INVALID_CREDENTIALS.
        """
        grant = auth_service_pb2.IssueTokenRequest.PasswordGrant(
            tenant=tenant, username=username, password=password
        )
        return await self._issue(auth_service_pb2.IssueTokenRequest(password=grant, scopes=scopes))

    async def client_credentials(
        self, client_id: str, client_secret: str, *, scopes: Sequence[str] = ()
    ) -> TokenPair:
        """Client credentials grant: an access token (no refresh token) for a service account."""
        grant = auth_service_pb2.IssueTokenRequest.ClientCredentialsGrant(
            client_id=client_id, client_secret=client_secret
        )
        return await self._issue(
            auth_service_pb2.IssueTokenRequest(client_credentials=grant, scopes=scopes)
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a refresh token for new tokens; the old refresh token is spent.

        Presenting a spent one again revokes its whole family (REFRESH_TOKEN_REUSED).
        """
        grant = auth_service_pb2.IssueTokenRequest.RefreshTokenGrant(refresh_token=refresh_token)
        return await self._issue(auth_service_pb2.IssueTokenRequest(refresh_token=grant))

    async def revoke(
        self,
        *,
        bearer_token: str,
        token: str | None = None,
        jti: str | None = None,
        subject: str | None = None,
        reason: str = "",
        request_id: str = "",
    ) -> datetime:
        """Revoke one token by value, an access token by `jti`, or every token of `subject`.

        Exactly one target; returns when the revocation took effect. A caller may always
        revoke a token it presents by value; other targets need `tokens:revoke`.
        """
        targets = {
            name: value
            for name, value in (("token", token), ("token_id", jti), ("subject", subject))
            if value is not None
        }
        if len(targets) != 1:
            raise ValidationError(
                "Name exactly one of token, jti and subject to revoke.",
                reason=AuthErrorReason.REVOKE_TARGET_MISSING.value,
                domain=AUTH_ERROR_DOMAIN,
            )
        request = auth_service_pb2.RevokeTokensRequest(
            reason=reason, request_id=request_id, **targets
        )
        response = await self._call(
            self._connected_stub().RevokeTokens, request, bearer_token=bearer_token
        )
        self._revoked.clear()
        return response.revoke_time.ToDatetime(tzinfo=UTC)

    async def verify(self, token: str) -> VerifiedToken:
        """Verify an access token locally against the cached JWKS (no call in the common case).

        An unknown key id refreshes the JWKS at most once per interval; when the service
        is down, the last good keys keep verifying. UnauthenticatedError names the rule
        broken (TOKEN_EXPIRED, TOKEN_SIGNATURE_INVALID, ...).
        """
        return await self._connected_jwks().verify(token)

    async def introspect(self, token: str, *, bearer_token: str) -> Introspection:
        """Ask the service whether `token` (access or refresh) is active, RFC 7662 style."""
        request = auth_service_pb2.IntrospectTokenRequest(token=token)
        response = await self._call(
            self._connected_stub().IntrospectToken, request, bearer_token=bearer_token
        )
        return Introspection.from_proto(response)

    async def refresh_keys(self) -> bool:
        """Fetch the JWKS now (sharing a fetch in flight); whether it succeeded."""
        return await self._connected_jwks().refresh()

    # -- permissions -------------------------------------------------------------------

    async def check(
        self, tenant: str, permission: str, *, bearer_token: str, principal: str | None = None
    ) -> bool:
        """Whether `principal` (default: the bearer token's subject) holds `permission` in
        `tenant`. Decisions are reused for `decision_cache_ttl_seconds`."""
        if principal is None:
            principal = (await self.verify(bearer_token)).subject
        query = CheckQuery(principal, tenant, permission)
        cached = self._decisions.get(query)
        if cached is not None:
            return cached
        request = auth_service_pb2.CheckRequest(
            principal=principal, tenant=tenant, permission=permission
        )
        response = await self._call(
            self._connected_stub().Check, request, bearer_token=bearer_token
        )
        self._decisions.put(query, response.allowed)
        return response.allowed

    async def check_many(self, queries: Sequence[CheckQuery], *, bearer_token: str) -> list[bool]:
        """One decision per query, in order: cached ones reused, the rest asked in batches."""
        decided: dict[CheckQuery, bool] = {}
        for query in queries:
            cached = self._decisions.get(query)
            if cached is not None:
                decided[query] = cached
        missing = [query for query in dict.fromkeys(queries) if query not in decided]
        stub = self._connected_stub()
        for start in range(0, len(missing), MAX_BATCH_CHECKS):
            batch = missing[start : start + MAX_BATCH_CHECKS]
            request = auth_service_pb2.BatchCheckRequest(
                requests=[
                    auth_service_pb2.CheckRequest(
                        principal=query.principal, tenant=query.tenant, permission=query.permission
                    )
                    for query in batch
                ]
            )
            response = await self._call(stub.BatchCheck, request, bearer_token=bearer_token)
            if len(response.responses) != len(batch):
                raise InternalError(
                    "BatchCheck answered a different number of decisions than it was asked."
                )
            for query, decision in zip(batch, response.responses, strict=True):
                decided[query] = decision.allowed
                self._decisions.put(query, decision.allowed)
        return [decided[query] for query in queries]

    # -- admin -------------------------------------------------------------------------

    async def get_tenant(self, name: str, *, bearer_token: str) -> Tenant:
        """A tenant by resource name. Needs `tenants:read`."""
        request = auth_service_pb2.GetTenantRequest(name=name)
        response = await self._call(self._connected_stub().GetTenant, request, bearer_token)
        return Tenant.from_proto(response.tenant)

    async def list_tenants(
        self, *, bearer_token: str, page_size: int = 0, page_token: str = ""
    ) -> Page[Tenant]:
        """A page of tenants, ordered by name."""
        request = auth_service_pb2.ListTenantsRequest(page_size=page_size, page_token=page_token)
        response = await self._call(self._connected_stub().ListTenants, request, bearer_token)
        return Page.of(response.tenants, Tenant.from_proto, response.next_page_token)

    async def create_tenant(
        self, tenant_id: str, *, bearer_token: str, display_name: str = "", request_id: str = ""
    ) -> Tenant:
        """Create `tenants/<tenant_id>` with its default roles. Needs `tenants:create`."""
        request = auth_service_pb2.CreateTenantRequest(
            tenant_id=tenant_id,
            tenant=resources_pb2.Tenant(display_name=display_name),
            request_id=request_id,
        )
        response = await self._call(self._connected_stub().CreateTenant, request, bearer_token)
        return Tenant.from_proto(response.tenant)

    async def disable_tenant(self, name: str, *, bearer_token: str, request_id: str = "") -> Tenant:
        """Disable a tenant: no logins, its tokens stop being active. Needs `tenants:disable`."""
        request = auth_service_pb2.DisableTenantRequest(name=name, request_id=request_id)
        response = await self._call(self._connected_stub().DisableTenant, request, bearer_token)
        return Tenant.from_proto(response.tenant)

    async def get_user(self, name: str, *, bearer_token: str) -> User:
        """A user by resource name. Needs `users:read` in its tenant."""
        request = auth_service_pb2.GetUserRequest(name=name)
        response = await self._call(self._connected_stub().GetUser, request, bearer_token)
        return User.from_proto(response.user)

    async def list_users(
        self, tenant: str, *, bearer_token: str, page_size: int = 0, page_token: str = ""
    ) -> Page[User]:
        """A page of the users of `tenant`, ordered by name."""
        request = auth_service_pb2.ListUsersRequest(
            parent=tenant, page_size=page_size, page_token=page_token
        )
        response = await self._call(self._connected_stub().ListUsers, request, bearer_token)
        return Page.of(response.users, User.from_proto, response.next_page_token)

    async def create_user(
        self,
        tenant: str,
        user_id: str,
        password: str,
        *,
        bearer_token: str,
        display_name: str = "",
        email: str = "",
        request_id: str = "",
    ) -> User:
        """Create a user of `tenant` with an initial password. Needs `users:create`."""
        request = auth_service_pb2.CreateUserRequest(
            parent=tenant,
            user_id=user_id,
            user=resources_pb2.User(display_name=display_name, email=email),
            password=password,
            request_id=request_id,
        )
        response = await self._call(self._connected_stub().CreateUser, request, bearer_token)
        return User.from_proto(response.user)

    async def disable_user(self, name: str, *, bearer_token: str, request_id: str = "") -> User:
        """Disable a user: no logins, its tokens stop being active. Needs `users:disable`."""
        request = auth_service_pb2.DisableUserRequest(name=name, request_id=request_id)
        response = await self._call(self._connected_stub().DisableUser, request, bearer_token)
        return User.from_proto(response.user)

    async def set_user_password(
        self, name: str, password: str, *, bearer_token: str, request_id: str = ""
    ) -> User:
        """Replace a user's password, revoking its refresh tokens. Needs `users:update`."""
        request = auth_service_pb2.SetUserPasswordRequest(
            name=name, password=password, request_id=request_id
        )
        response = await self._call(self._connected_stub().SetUserPassword, request, bearer_token)
        return User.from_proto(response.user)

    async def get_service_account(self, name: str, *, bearer_token: str) -> ServiceAccount:
        """A service account by resource name. Needs `service-accounts:read`."""
        request = auth_service_pb2.GetServiceAccountRequest(name=name)
        response = await self._call(self._connected_stub().GetServiceAccount, request, bearer_token)
        return ServiceAccount.from_proto(response.service_account)

    async def list_service_accounts(
        self, tenant: str, *, bearer_token: str, page_size: int = 0, page_token: str = ""
    ) -> Page[ServiceAccount]:
        """A page of the service accounts of `tenant`, ordered by name."""
        request = auth_service_pb2.ListServiceAccountsRequest(
            parent=tenant, page_size=page_size, page_token=page_token
        )
        response = await self._call(
            self._connected_stub().ListServiceAccounts, request, bearer_token
        )
        return Page.of(
            response.service_accounts, ServiceAccount.from_proto, response.next_page_token
        )

    async def create_service_account(
        self,
        tenant: str,
        service_account_id: str,
        *,
        bearer_token: str,
        display_name: str = "",
        description: str = "",
        request_id: str = "",
    ) -> CreatedServiceAccount:
        """Create a service account; its client secret is in the result, shown this once."""
        request = auth_service_pb2.CreateServiceAccountRequest(
            parent=tenant,
            service_account_id=service_account_id,
            service_account=resources_pb2.ServiceAccount(
                display_name=display_name, description=description
            ),
            request_id=request_id,
        )
        response = await self._call(
            self._connected_stub().CreateServiceAccount, request, bearer_token
        )
        return CreatedServiceAccount(
            ServiceAccount.from_proto(response.service_account), response.client_secret
        )

    async def disable_service_account(
        self, name: str, *, bearer_token: str, request_id: str = ""
    ) -> ServiceAccount:
        """Disable a service account. Needs `service-accounts:disable`."""
        request = auth_service_pb2.DisableServiceAccountRequest(name=name, request_id=request_id)
        response = await self._call(
            self._connected_stub().DisableServiceAccount, request, bearer_token
        )
        return ServiceAccount.from_proto(response.service_account)

    async def assign_role(
        self, principal: str, role: str, *, bearer_token: str, request_id: str = ""
    ) -> RoleAssignment:
        """Give `principal` the role `role` (idempotent). Needs `roles:assign`."""
        request = auth_service_pb2.AssignRoleRequest(
            principal=principal, role=role, request_id=request_id
        )
        response = await self._call(self._connected_stub().AssignRole, request, bearer_token)
        self._decisions.clear()
        return RoleAssignment.from_proto(response.role_assignment)

    async def unassign_role(
        self, principal: str, role: str, *, bearer_token: str, request_id: str = ""
    ) -> None:
        """Take the role `role` from `principal` (idempotent). Needs `roles:assign`."""
        request = auth_service_pb2.UnassignRoleRequest(
            principal=principal, role=role, request_id=request_id
        )
        await self._call(self._connected_stub().UnassignRole, request, bearer_token)
        self._decisions.clear()

    async def grant_role_permission(
        self, role: str, permission: str, *, bearer_token: str, request_id: str = ""
    ) -> RolePermission:
        """Grant `permission` to `role` (idempotent). Needs `roles:update`."""
        request = auth_service_pb2.GrantRolePermissionRequest(
            role=role, permission=permission, request_id=request_id
        )
        response = await self._call(
            self._connected_stub().GrantRolePermission, request, bearer_token
        )
        self._decisions.clear()
        return RolePermission.from_proto(response.role_permission)

    async def revoke_role_permission(
        self, role: str, permission: str, *, bearer_token: str, request_id: str = ""
    ) -> None:
        """Revoke `permission` from `role` (idempotent). Needs `roles:update`."""
        request = auth_service_pb2.RevokeRolePermissionRequest(
            role=role, permission=permission, request_id=request_id
        )
        await self._call(self._connected_stub().RevokeRolePermission, request, bearer_token)
        self._decisions.clear()

    async def list_role_assignments(
        self,
        tenant: str,
        *,
        bearer_token: str,
        principal: str = "",
        role: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[RoleAssignment]:
        """A page of the role assignments in `tenant`, optionally of one principal or role."""
        request = auth_service_pb2.ListRoleAssignmentsRequest(
            parent=tenant,
            principal=principal,
            role=role,
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._call(
            self._connected_stub().ListRoleAssignments, request, bearer_token
        )
        return Page.of(
            response.role_assignments, RoleAssignment.from_proto, response.next_page_token
        )

    async def list_role_permissions(
        self, role: str, *, bearer_token: str, page_size: int = 0, page_token: str = ""
    ) -> Page[RolePermission]:
        """A page of the permissions granted to `role`."""
        request = auth_service_pb2.ListRolePermissionsRequest(
            role=role, page_size=page_size, page_token=page_token
        )
        response = await self._call(
            self._connected_stub().ListRolePermissions, request, bearer_token
        )
        return Page.of(
            response.role_permissions, RolePermission.from_proto, response.next_page_token
        )

    async def rotate_signing_key(
        self, *, bearer_token: str, algorithm: str = "", request_id: str = ""
    ) -> KeyRotation:
        """Make a new active signing key; the old one keeps verifying its tokens.

        Needs `signing-keys:rotate`. This client's JWKS is refreshed afterwards.
        """
        request = auth_service_pb2.RotateSigningKeyRequest(
            algorithm=algorithm, request_id=request_id
        )
        response = await self._call(self._connected_stub().RotateSigningKey, request, bearer_token)
        await self.refresh_keys()
        retired = (
            SigningKeyInfo.from_proto(response.retired_signing_key)
            if response.HasField("retired_signing_key")
            else None
        )
        return KeyRotation(SigningKeyInfo.from_proto(response.signing_key), retired)

    # -- plumbing ----------------------------------------------------------------------

    def _connected_jwks(self) -> JwksCache:
        if self._jwks is None:
            raise self._not_connected()
        return self._jwks

    async def _issue(self, request: auth_service_pb2.IssueTokenRequest) -> TokenPair:
        response = await self._call(self._connected_stub().IssueToken, request)
        return TokenPair.from_proto(response)

    async def _fetch_jwks(
        self, *, wait_for_ready: bool | None = None, deadline_seconds: float | None = None
    ) -> FetchedJwks:
        response = await self._call(
            self._connected_stub().GetJwks,
            auth_service_pb2.GetJwksRequest(),
            deadline_seconds=deadline_seconds,
            wait_for_ready=wait_for_ready,
        )
        max_age = (
            response.max_age.ToTimedelta().total_seconds()
            if response.HasField("max_age")
            else DEFAULT_JWKS_MAX_AGE_SECONDS
        )
        return FetchedJwks(KeySet.from_jwks(response.json_document), max_age)

    async def _introspected_revocation(self, token: str, verified: VerifiedToken) -> bool:
        # The token authenticates its own introspection: the service refuses a revoked
        # one with its precise reason (TOKEN_REVOKED, USER_DISABLED, ...), raised as is.
        cached = self._revoked.get(verified.token_id)
        if cached is not None:
            return cached
        try:
            revoked = not (await self.introspect(token, bearer_token=token)).active
        except UnauthenticatedError:
            self._revoked.put(verified.token_id, True)
            raise
        self._revoked.put(verified.token_id, revoked)
        return revoked
