"""The token endpoints' logic: grants, server-side verification, revocation, key rotation.

`TokenService` is what the gRPC servicer calls; it speaks mainmast errors and the core's
dataclasses, not protobuf. Every failed login answers INVALID_CREDENTIALS after exactly
one argon2id verification, whether the user, tenant or client id exists or not, so
neither the error nor the time taken tells an attacker which part was wrong. A disabled
principal is named as such only to a caller who proved the password. Repeated failures
lock the name and the client address out for a growing time (`_login_throttle`); a
locked-out login answers LOGIN_THROTTLED before any argon2id work.

Auth events go to the log with tenant and subject; credentials never do (the token id
identifies a token in the log instead of the token).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.auth import (
    AUTH_ERROR_DOMAIN,
    AuthErrorReason,
    TokenVerifier,
    VerificationPolicy,
    VerifiedToken,
)
from mainmast.auth._jwks import ASYMMETRIC_ALGORITHMS
from mainmast.db import DatabasePool
from mainmast.errors import (
    FailedPreconditionError,
    PermissionDeniedError,
    RateLimitedError,
    UnauthenticatedError,
    ValidationError,
)
from mainmast.logging import get_logger

from ._access_state_sync import AccessStateSync
from ._key_encryption import PrivateKeyCipher
from ._key_ring import KeyRing
from ._keys import SigningAlgorithm, SigningKey, generate_signing_key
from ._login_throttle import LoginLimits, LoginOrigin, LoginThrottle
from ._models import (
    PolicyLineRow,
    RefreshTokenFamilyRow,
    RefreshTokenRow,
    ServiceAccountRow,
    SigningKeyRow,
    State,
    UserRow,
)
from ._passwords import PasswordHasher
from ._policy_model import Section
from ._policy_sync import PolicySync
from ._refresh_tokens import (
    REFRESH_TOKEN_PREFIX,
    FamilyRevokeReason,
    RefreshTokenFamily,
    RefreshTokenLifetimes,
    ReuseDetected,
    hash_refresh_token,
    start_family,
)
from ._request_records import RequestKey, RequestRecords
from ._resource_names import PrincipalKind, principal_kind, tenant_name, tenant_of_principal
from ._store_directory import (
    find_service_account,
    find_service_account_by_client_id,
    find_tenant,
    find_user,
    set_user_password,
)
from ._store_keys import ACTIVE_SLOT, load_key_ring, save_key_ring
from ._store_tokens import (
    find_refresh_family,
    redeem_refresh_token,
    revoke_refresh_families,
    revoke_refresh_family,
    revoke_subject,
    revoke_token_ids,
    save_refresh_family,
)
from ._tokens import AccessTokenIssuer, IssuedAccessToken

_USERNAME: Final = re.compile(r"[a-z0-9._-]{1,63}")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_MAX_SCOPES: Final = 64
_MAX_CREDENTIAL_CHARS: Final = 1024
_REVOKE_PERMISSION: Final = "tokens:revoke"
_ROTATE_PERMISSION: Final = "signing-keys:rotate"
# A token naming an unknown key reloads the key ring at most this often, so a stream of
# forged kids cannot turn into a stream of database reads.
_MIN_KEY_RELOAD_SECONDS: Final = 5.0
_REFUSAL_MESSAGES: Final = {
    AuthErrorReason.TOKEN_REVOKED: "The token was revoked.",
    AuthErrorReason.TENANT_DISABLED: "The tenant is disabled.",
    AuthErrorReason.USER_DISABLED: "The user is disabled.",
    AuthErrorReason.SERVICE_ACCOUNT_DISABLED: "The service account is disabled.",
}


def _invalid_credentials() -> UnauthenticatedError:
    return UnauthenticatedError(
        "The credentials are not valid.",
        reason=AuthErrorReason.INVALID_CREDENTIALS.value,
        domain=AUTH_ERROR_DOMAIN,
    )


def _unauthenticated(reason: str, message: str) -> UnauthenticatedError:
    return UnauthenticatedError(message, reason=reason, domain=AUTH_ERROR_DOMAIN)


def _refused(reason: AuthErrorReason) -> UnauthenticatedError:
    """Why a principal's credentials or token are refused (revoked, or disabled)."""
    return _unauthenticated(reason, _REFUSAL_MESSAGES[reason])


def _permission_missing(permission: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"The caller lacks the permission {permission}.",
        reason=AuthErrorReason.PERMISSION_MISSING,
        domain=AUTH_ERROR_DOMAIN,
        metadata={"permission": permission},
    )


def _checked_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    if len(scopes) > _MAX_SCOPES:
        raise ValidationError(f"At most {_MAX_SCOPES} scopes can be asked for.")
    for scope in scopes:
        if _SCOPE_TOKEN.fullmatch(scope) is None:
            raise ValidationError(
                "A scope is 1 to 128 printable ASCII characters without spaces, quotes or "
                "backslashes (RFC 6749).",
                metadata={"field": "scopes"},
            )
    return tuple(dict.fromkeys(scopes))


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """What the token endpoints need from the service's settings."""

    issuer: str
    """`iss` of issued tokens."""
    audience: str
    """`aud` of issued tokens."""
    access_token_lifetime: timedelta
    """How long an access token lives."""
    algorithm: SigningAlgorithm
    """The algorithm of keys generated by a rotation that names none."""
    leeway: timedelta
    """Clock skew tolerated by the service's own verifier."""
    jwks_max_age: timedelta
    """How long clients may cache the JWKS; also how often the key ring is reloaded."""
    refresh_lifetimes: RefreshTokenLifetimes = field(default_factory=RefreshTokenLifetimes)
    """How long refresh tokens live."""


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """The outcome of a grant."""

    access: IssuedAccessToken
    """The access token."""
    refresh_token: str | None = field(default=None, repr=False)
    """The new refresh token; None for client credentials."""
    refresh_expire_time: datetime | None = None
    """When the refresh token lapses unused."""


@dataclass(frozen=True, slots=True)
class ActiveRefreshToken:
    """What introspection tells of a live refresh token."""

    subject: str
    """Resource name of the principal."""
    tenant: str
    """Resource name of its tenant."""
    scopes: tuple[str, ...]
    """The scopes of its family."""
    issue_time: datetime
    """When this token was issued."""
    expire_time: datetime
    """When it lapses unused."""


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """The outcome of RotateSigningKey."""

    active: SigningKey
    """The new active key."""
    retired: SigningKey
    """The key it replaced, published until its last token expires."""


class TokenService:
    """Issues, verifies, revokes and introspects tokens; rotates the signing key.

    Holds the key ring in memory and reloads it from the database every `jwks_max_age`
    (or at once when a token names a key it does not know), so a rotation made through
    another replica reaches this one. With an HS256 secret (`cipher` None, `ring` holding
    the secret alone) nothing is reloaded and rotation is by configuration.

    Verification reads nothing from the database: revocations and disabled principals
    come from `access` (kept in step with the store by polling), and permission checks
    for revocation and rotation from `policy`'s authorizer. `clock` (seconds since the
    epoch) is what tokens are issued and verified at; `login_clock` (monotonic) is the
    login throttle's.
    """

    def __init__(
        self,
        database: DatabasePool,
        cipher: PrivateKeyCipher | None,
        ring: KeyRing,
        settings: TokenSettings,
        *,
        hasher: PasswordHasher,
        policy: PolicySync,
        access: AccessStateSync,
        login_limits: LoginLimits | None = None,
        login_clock: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (cipher is None) != (ring.active.algorithm is SigningAlgorithm.HS256):
            raise ValueError("stored keys need their cipher; an HS256 secret needs none")
        self._database = database
        self._throttle = LoginThrottle(login_limits, clock=login_clock)
        self._cipher = cipher
        self._settings = settings
        self._hasher = hasher
        self._policy = policy
        self._access = access
        self._requests = RequestRecords(database)
        self._issuer = AccessTokenIssuer(
            issuer=settings.issuer,
            audience=settings.audience,
            lifetime=settings.access_token_lifetime,
            clock=clock,
        )
        self._ring = ring
        self._ring_loaded_at = time.monotonic()
        self._forced_reload_at = float("-inf")
        algorithms = {ring.active.algorithm.value} if cipher is None else ASYMMETRIC_ALGORITHMS
        self._verifier = TokenVerifier(
            ring.verification_keys(self._now()),
            VerificationPolicy(
                settings.issuer,
                settings.audience,
                algorithms=frozenset(algorithms),
                leeway_seconds=settings.leeway.total_seconds(),
            ),
            clock=clock,
        )
        self._log = get_logger("mainmast_auth.tokens")

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    @property
    def jwks_max_age(self) -> timedelta:
        """How long clients may cache the JWKS."""
        return self._settings.jwks_max_age

    # Key ring

    def _use_ring(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ring_loaded_at = time.monotonic()
        self._verifier.replace_keys(ring.verification_keys(self._now()))

    async def _reload_ring(self) -> None:
        if self._cipher is None:
            return  # An HS256 secret comes from the settings, not the database.
        async with self._database.session() as session:
            ring = await load_key_ring(session, self._cipher, now=self._now())
        if ring is not None:
            self._use_ring(ring)

    async def key_ring(self) -> KeyRing:
        """The current key ring, reloaded from the database when older than `jwks_max_age`."""
        age = time.monotonic() - self._ring_loaded_at
        if age >= self._settings.jwks_max_age.total_seconds():
            await self._reload_ring()
        return self._ring

    async def jwks(self) -> tuple[KeyRing, datetime]:
        """The key ring to publish, and the time to publish it at."""
        return await self.key_ring(), self._now()

    async def rotate_signing_key(
        self, caller: str, algorithm: str, *, request_id: str = ""
    ) -> KeyRotation:
        """Retire the active key for a new one; needs `signing-keys:rotate` on the platform.

        A retry with the first call's `request_id` answers that rotation's keys (as they
        are now) instead of rotating again. FailedPreconditionError when the service signs
        with a configured HS256 secret."""
        key = RequestKey.of(caller, request_id, "RotateSigningKey", algorithm=algorithm)
        if not self._policy.authorizer.check_platform(caller, _ROTATE_PERMISSION):
            raise _permission_missing(_ROTATE_PERMISSION)
        cipher = self._cipher
        if cipher is None:
            raise FailedPreconditionError(
                "The service signs with a configured HS256 secret: rotate it by configuration.",
                metadata={"algorithm": SigningAlgorithm.HS256.value},
            )
        chosen = SigningAlgorithm.parse(algorithm) if algorithm else self._settings.algorithm
        now = self._now()
        new_key = generate_signing_key(chosen, create_time=now)

        async def rotate(session: AsyncSession) -> tuple[tuple[KeyRotation, KeyRing | None], str]:
            current = await load_key_ring(session, cipher, now=now, lock=True)
            if current is None:
                raise RuntimeError("the key ring is created at startup and never removed")
            ring = current.rotate(
                new_key,
                now=now,
                token_lifetime=self._settings.access_token_lifetime,
                leeway=self._settings.leeway,
            )
            await save_key_ring(session, ring, cipher)
            rotation = KeyRotation(active=new_key, retired=ring.retired[0])
            return (rotation, ring), f"{new_key.key_id} {rotation.retired.key_id}"

        async def replay(outcome: str) -> tuple[KeyRotation, KeyRing | None]:
            active_id, retired_id = outcome.split()
            async with self._database.session() as session:
                ring = await load_key_ring(session, cipher, now=self._now())
            active = None if ring is None else ring.get_key(active_id)
            retired = None if ring is None else ring.get_key(retired_id)
            if active is None or retired is None:
                raise FailedPreconditionError(
                    "The keys of the rotation made with this request_id have expired since.",
                    metadata={"field": "request_id"},
                )
            return KeyRotation(active=active, retired=retired), None

        ran = await self._requests.run(key, rotate, replay)
        rotation, ring = ran.value
        if ring is not None:
            self._use_ring(ring)
            self._log.info(
                "auth.signing_key_rotated",
                key_id=rotation.active.key_id,
                algorithm=chosen.value,
                retired_key_id=rotation.retired.key_id,
            )
        return rotation

    # Grants

    async def _roles_of(self, session: AsyncSession, principal: str) -> list[str]:
        # The principal's direct role assignments (Casbin `g` lines whose member it is),
        # read by one indexed query rather than by loading the whole policy.
        statement = select(PolicyLineRow.v1).where(
            PolicyLineRow.ptype == Section.ASSIGNMENT.value, PolicyLineRow.v0 == principal
        )
        return sorted(set((await session.execute(statement)).scalars()))

    async def _active_key_id(self, session: AsyncSession) -> str | None:
        if self._cipher is None:
            return self._ring.active.key_id  # The configured secret is the one active key.
        statement = select(SigningKeyRow.key_id).where(SigningKeyRow.active_slot == ACTIVE_SLOT)
        return (await session.execute(statement)).scalar_one_or_none()

    async def _sign(
        self,
        *,
        active_key_id: str | None,
        subject: str,
        tenant: str,
        roles: Sequence[str],
        scopes: Sequence[str],
        client_id: str | None = None,
    ) -> IssuedAccessToken:
        """Sign with the stored active key. A key another replica retired stays published
        only for one token lifetime after its retirement: signing with it later would hand
        out tokens that outlive their key, so a changed active key reloads the ring first."""
        if active_key_id != self._ring.active.key_id:
            await self._reload_ring()
        return self._issuer.issue(
            self._ring.active,
            subject=subject,
            tenant=tenant,
            roles=roles,
            scopes=scopes,
            client_id=client_id,
        )

    def _check_throttle(
        self, name: str, address: str | None, *, tenant: str | None, grant: str
    ) -> None:
        try:
            self._throttle.check(name, address)
        except RateLimitedError:
            self._log.warning(
                "auth.login_throttled", tenant=tenant, name=name, address=address, grant=grant
            )
            raise

    async def password_grant(
        self,
        tenant: str,
        username: str,
        password: str,
        scopes: Sequence[str],
        *,
        origin: LoginOrigin | None = None,
    ) -> IssuedTokens:
        """Log a user in: an access token and the first refresh token of a new family.

        RateLimitedError(LOGIN_THROTTLED) while the username or the client address of
        `origin` is locked out after failed logins, before any password work."""
        requested = _checked_scopes(scopes)
        tenant = tenant_name(tenant)
        subject = f"{tenant}/users/{username}"
        # Keyed on the name asked for, existing or not: a lockout reveals no user.
        throttle_name = subject[:_MAX_CREDENTIAL_CHARS]
        address = self._throttle.address_of(origin)
        self._check_throttle(throttle_name, address, tenant=tenant, grant="password")
        well_formed = _USERNAME.fullmatch(username) is not None
        password_hash = None
        user_state = tenant_state = None
        if well_formed and len(password) <= _MAX_CREDENTIAL_CHARS:
            async with self._database.session() as session:
                tenant_row = await find_tenant(session, tenant)
                user_row = await find_user(session, subject)
            if tenant_row is not None and user_row is not None:
                password_hash = user_row.password_hash
                user_state, tenant_state = user_row.state, tenant_row.state
        # One argon2id verification on every path: unknown users cost what wrong passwords do.
        if not await self._hasher.verify_async(password_hash, password[:_MAX_CREDENTIAL_CHARS]):
            self._throttle.record_failure(throttle_name, address)
            self._log.warning("auth.login_failed", tenant=tenant, subject=subject, grant="password")
            raise _invalid_credentials()
        self._throttle.record_success(throttle_name)
        self._raise_if_disabled(
            tenant=tenant,
            subject=subject,
            principal_state=user_state,
            tenant_state=tenant_state,
            kind=PrincipalKind.USER,
        )
        now = self._now()
        family = start_family(
            subject=subject,
            tenant=tenant,
            scopes=requested,
            now=now,
            lifetimes=self._settings.refresh_lifetimes,
        )
        async with self._database.session() as session:
            if password_hash is not None and self._hasher.needs_rehash(password_hash):
                await set_user_password(
                    session,
                    subject,
                    password_hash=await self._hasher.hash_async(password),
                    now=now,
                )
            await save_refresh_family(session, family)
            roles = await self._roles_of(session, subject)
            active_key_id = await self._active_key_id(session)
        access = await self._sign(
            active_key_id=active_key_id,
            subject=subject,
            tenant=tenant,
            roles=roles,
            scopes=requested,
        )
        self._log.info(
            "auth.token_issued",
            tenant=tenant,
            subject=subject,
            grant="password",
            token_id=access.token_id,
        )
        return IssuedTokens(access, family.token, family.record.expire_time)

    async def client_credentials_grant(
        self,
        client_id: str,
        client_secret: str,
        scopes: Sequence[str],
        *,
        origin: LoginOrigin | None = None,
    ) -> IssuedTokens:
        """Authenticate a service account by client id and secret: an access token only.

        Throttled like `password_grant`, per client id and per client address."""
        requested = _checked_scopes(scopes)
        throttle_name = f"clients/{client_id[:_MAX_CREDENTIAL_CHARS]}"
        address = self._throttle.address_of(origin)
        self._check_throttle(throttle_name, address, tenant=None, grant="client_credentials")
        secret_hash = None
        account = None
        tenant_state = None
        if 0 < len(client_id) <= _MAX_CREDENTIAL_CHARS:
            async with self._database.session() as session:
                account = await find_service_account_by_client_id(session, client_id)
                if account is not None:
                    tenant_row = await find_tenant(session, f"tenants/{account.tenant_id}")
                    tenant_state = None if tenant_row is None else tenant_row.state
                    secret_hash = account.secret_hash
        if account is None or not await self._hasher.verify_async(
            secret_hash, client_secret[:_MAX_CREDENTIAL_CHARS]
        ):
            if account is None:
                # Same cost as a wrong secret: an unknown client id must not answer faster.
                await self._hasher.verify_async(None, client_secret[:_MAX_CREDENTIAL_CHARS])
            self._throttle.record_failure(throttle_name, address)
            self._log.warning(
                "auth.login_failed",
                tenant=None if account is None else f"tenants/{account.tenant_id}",
                subject=None if account is None else account.name,
                grant="client_credentials",
            )
            raise _invalid_credentials()
        self._throttle.record_success(throttle_name)
        tenant = f"tenants/{account.tenant_id}"
        self._raise_if_disabled(
            tenant=tenant,
            subject=account.name,
            principal_state=account.state,
            tenant_state=tenant_state,
            kind=PrincipalKind.SERVICE_ACCOUNT,
        )
        async with self._database.session() as session:
            roles = await self._roles_of(session, account.name)
            active_key_id = await self._active_key_id(session)
        access = await self._sign(
            active_key_id=active_key_id,
            subject=account.name,
            tenant=tenant,
            roles=roles,
            scopes=requested,
            client_id=account.client_id,
        )
        self._log.info(
            "auth.token_issued",
            tenant=tenant,
            subject=account.name,
            grant="client_credentials",
            token_id=access.token_id,
        )
        return IssuedTokens(access)

    async def refresh_grant(self, refresh_token: str) -> IssuedTokens:
        """Rotate a refresh token; a spent one revokes its whole family (REFRESH_TOKEN_REUSED)."""
        if not refresh_token.startswith(REFRESH_TOKEN_PREFIX) or (
            len(refresh_token) > _MAX_CREDENTIAL_CHARS
        ):
            raise _unauthenticated(
                AuthErrorReason.REFRESH_TOKEN_INVALID,
                "The refresh token is unknown, expired or revoked.",
            )
        now = self._now()
        async with self._database.session() as session:
            outcome = await redeem_refresh_token(
                session, refresh_token, now=now, lifetimes=self._settings.refresh_lifetimes
            )
            if not isinstance(outcome, ReuseDetected):
                family = outcome.successor.family
                await self._check_enabled(session, family.subject)
                roles = await self._roles_of(session, family.subject)
                active_key_id = await self._active_key_id(session)
        if isinstance(outcome, ReuseDetected):
            # Logged and answered only after the revoked family is committed.
            self._log.warning(
                "auth.refresh_token_reuse_detected",
                tenant=outcome.family.tenant,
                subject=outcome.family.subject,
                family_id=outcome.family.family_id,
            )
            raise outcome.error()
        # Only users hold refresh tokens, so a refreshed token never carries a client_id.
        access = await self._sign(
            active_key_id=active_key_id,
            subject=family.subject,
            tenant=family.tenant,
            roles=roles,
            scopes=family.scopes,
        )
        self._log.info(
            "auth.token_refreshed",
            tenant=family.tenant,
            subject=family.subject,
            family_id=family.family_id,
            token_id=access.token_id,
        )
        successor = outcome.successor
        return IssuedTokens(access, successor.token, successor.record.expire_time)

    # Verification

    def _raise_if_disabled(
        self,
        *,
        tenant: str,
        subject: str,
        principal_state: str | None,
        tenant_state: str | None,
        kind: PrincipalKind,
    ) -> None:
        if tenant_state != State.ACTIVE.value:
            self._log.warning("auth.login_failed", tenant=tenant, subject=subject, why="tenant")
            raise _refused(AuthErrorReason.TENANT_DISABLED)
        if principal_state != State.ACTIVE.value:
            self._log.warning("auth.login_failed", tenant=tenant, subject=subject, why="disabled")
            if kind is PrincipalKind.USER:
                raise _refused(AuthErrorReason.USER_DISABLED)
            raise _refused(AuthErrorReason.SERVICE_ACCOUNT_DISABLED)

    async def _check_enabled(self, session: AsyncSession, subject: str) -> None:
        """UnauthenticatedError unless `subject` and its tenant exist and are enabled."""
        tenant = tenant_of_principal(subject, field="sub")
        kind = principal_kind(subject)
        tenant_row = await find_tenant(session, tenant)
        principal: UserRow | ServiceAccountRow | None
        if kind is PrincipalKind.USER:
            principal = await find_user(session, subject)
        else:
            principal = await find_service_account(session, subject)
        self._raise_if_disabled(
            tenant=tenant,
            subject=subject,
            principal_state=None if principal is None else principal.state,
            tenant_state=None if tenant_row is None else tenant_row.state,
            kind=kind,
        )

    async def verify(self, token: str) -> VerifiedToken:
        """Verify an access token as the service sees it: signature and claims (the SDK's
        TokenVerifier, which remembers the tokens it verified, so a token presented again
        skips the signature check), then revocations and the state of its principal and
        tenant, from this replica's access state on every call (no database read)."""
        try:
            verified = self._verifier.verify(token)
        except UnauthenticatedError as exc:
            since_forced = time.monotonic() - self._forced_reload_at
            if (
                exc.reason != AuthErrorReason.TOKEN_KEY_UNKNOWN.value
                or self._cipher is None
                or since_forced < _MIN_KEY_RELOAD_SECONDS
            ):
                raise
            # Maybe a key another replica made since this one last loaded the ring.
            self._forced_reload_at = time.monotonic()
            await self._reload_ring()
            verified = self._verifier.verify(token)
        subject = verified.subject
        try:
            tenant = tenant_of_principal(subject, field="sub")
        except ValidationError as exc:
            raise _unauthenticated(
                AuthErrorReason.TOKEN_MALFORMED, "The token's subject is not a principal."
            ) from exc
        refusal = self._access.state.refusal(
            token_id=verified.token_id,
            subject=subject,
            tenant=tenant,
            issued_at=verified.issued_at,
            kind=PrincipalKind(subject.split("/", 3)[2]),
        )
        if refusal is not None:
            raise _refused(refusal)
        return verified

    async def introspect(self, token: str) -> VerifiedToken | ActiveRefreshToken | None:
        """The verified access token or live refresh token, or None for any failure
        (RFC 7662); why goes to the log."""
        try:
            if token.startswith(REFRESH_TOKEN_PREFIX):
                return await self._active_refresh_token(token)
            return await self.verify(token)
        except (UnauthenticatedError, ValidationError) as exc:
            self._log.info("auth.introspect_inactive", why=exc.reason)
            return None

    async def _active_refresh_token(self, token: str) -> ActiveRefreshToken:
        """The refresh token if it would be accepted now; UnauthenticatedError otherwise."""
        now = self._now()
        invalid = _unauthenticated(
            AuthErrorReason.REFRESH_TOKEN_INVALID,
            "The refresh token is unknown, spent, expired or revoked.",
        )
        async with self._database.session() as session:
            record = await session.get(RefreshTokenRow, hash_refresh_token(token))
            if record is None or record.rotate_time is not None or record.expire_time <= now:
                raise invalid
            family = await session.get(RefreshTokenFamilyRow, record.family_id)
            if family is None or family.revoke_time is not None or family.expire_time <= now:
                raise invalid
            await self._check_enabled(session, family.subject)
            return ActiveRefreshToken(
                subject=family.subject,
                tenant=family.tenant,
                scopes=tuple(family.scopes.split()),
                issue_time=record.create_time,
                expire_time=record.expire_time,
            )

    # Revocation

    async def revoke_token(
        self, caller: str, token: str, *, why: str, request_id: str = ""
    ) -> datetime:
        """Revoke one token by value; an unknown or invalid token succeeds (RFC 7009).

        A retry with the first call's `request_id` answers the first revoke time."""
        # The token itself is never stored, only the SHA-256 of the request's fields.
        key = RequestKey.of(caller, request_id, "RevokeTokens", token=token, reason=why)
        now = self._now()
        if token.startswith(REFRESH_TOKEN_PREFIX):

            async def revoke_family(
                session: AsyncSession,
            ) -> tuple[tuple[datetime, RefreshTokenFamily | None], str]:
                family = await find_refresh_family(session, token)
                if family is not None:
                    await revoke_refresh_family(
                        session, family.family_id, now=now, reason=FamilyRevokeReason.REVOKED
                    )
                return (now, family), now.isoformat()

            ran = await self._requests.run(key, revoke_family, _first_revoke_time_and_nothing)
            revoke_time, family = ran.value
            if family is not None:
                self._log.info(
                    "auth.token_revoked",
                    tenant=family.tenant,
                    subject=family.subject,
                    target="refresh_token",
                    family_id=family.family_id,
                    why=why,
                )
            return revoke_time
        try:
            verified = self._verifier.verify(token)
        except UnauthenticatedError:
            return now

        async def revoke(session: AsyncSession) -> tuple[datetime, str]:
            await revoke_token_ids(session, [(verified.token_id, verified.expire_time)], now=now)
            return now, now.isoformat()

        ran_access = await self._requests.run(key, revoke, _first_revoke_time)
        if not ran_access.replayed:
            self._access.token_revoked(verified.token_id, verified.expire_time)
            self._log.info(
                "auth.token_revoked",
                tenant=verified.tenant,
                subject=verified.subject,
                target="token",
                token_id=verified.token_id,
                why=why,
            )
        return ran_access.value

    async def revoke_token_id(
        self, caller: str, token_id: str, *, why: str, request_id: str = ""
    ) -> datetime:
        """Revoke an access token by jti; needs `tokens:revoke` in the caller's tenant.

        A retry with the first call's `request_id` answers the first revoke time."""
        try:
            canonical = str(uuid.UUID(token_id))
        except ValueError as exc:
            raise ValidationError("A token id is a UUID.", metadata={"field": "token_id"}) from exc
        key = RequestKey.of(caller, request_id, "RevokeTokens", token_id=canonical, reason=why)
        if not self._policy.authorizer.check(
            caller, tenant_of_principal(caller), _REVOKE_PERMISSION
        ):
            raise _permission_missing(_REVOKE_PERMISSION)
        now = self._now()
        # No token lives longer than this past its revocation, wherever its jti came from.
        expire_time = now + self._settings.access_token_lifetime + self._settings.leeway

        async def revoke(session: AsyncSession) -> tuple[datetime, str]:
            await revoke_token_ids(session, [(canonical, expire_time)], now=now)
            return now, now.isoformat()

        ran = await self._requests.run(key, revoke, _first_revoke_time)
        if not ran.replayed:
            self._access.token_revoked(canonical, expire_time)
            self._log.info("auth.token_revoked", target="token_id", token_id=canonical, why=why)
        return ran.value

    async def revoke_subject(
        self, caller: str, subject: str, *, why: str, request_id: str = ""
    ) -> datetime:
        """Revoke every token of `subject` so far; a caller may always revoke its own, other
        subjects need `tokens:revoke` in the subject's tenant.

        A retry with the first call's `request_id` answers the first revoke time and
        leaves the tokens issued since alone."""
        tenant = tenant_of_principal(subject, field="subject")
        key = RequestKey.of(caller, request_id, "RevokeTokens", subject=subject, reason=why)
        if caller != subject and not self._policy.authorizer.check(
            caller, tenant, _REVOKE_PERMISSION
        ):
            raise _permission_missing(_REVOKE_PERMISSION)
        now = self._now()

        async def revoke(
            session: AsyncSession,
        ) -> tuple[tuple[datetime, tuple[datetime, int] | None], str]:
            not_before = await revoke_subject(session, subject, not_before=now)
            families = await revoke_refresh_families(
                session, subject=subject, now=now, reason=FamilyRevokeReason.REVOKED
            )
            return (now, (not_before, families)), now.isoformat()

        ran = await self._requests.run(key, revoke, _first_revoke_time_and_nothing)
        revoke_time, done = ran.value
        if done is not None:
            not_before, families = done
            self._access.subject_revoked(subject, not_before)
            self._log.info(
                "auth.token_revoked",
                tenant=tenant,
                subject=subject,
                target="subject",
                refresh_families=families,
                why=why,
            )
        return revoke_time


async def _first_revoke_time(outcome: str) -> datetime:
    """The replay of a revocation: the first call's revoke time."""
    return datetime.fromisoformat(outcome)


async def _first_revoke_time_and_nothing(outcome: str) -> tuple[datetime, None]:
    """The replay of a revocation whose first call also tells what it revoked: the first
    call's revoke time, and nothing revoked now (so nothing is applied or logged again)."""
    return await _first_revoke_time(outcome), None
