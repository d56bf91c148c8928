"""What AuthClient returns: frozen dataclasses built from the contract's messages.

Callers never handle raw protobuf: empty proto strings become None where "absent" is
meant, timestamps become aware UTC datetimes, repeated fields become tuples. Secrets
(tokens, client secrets) stay out of `repr`, so a logged result leaks nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from mainmast._proto_values import optional_time

from .v1 import auth_service_pb2, resources_pb2

T = TypeVar("T")
M = TypeVar("M")


def _time(message: Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def _or_none(value: str) -> str | None:
    return value or None


class ResourceState(enum.StrEnum):
    """The state of a tenant, user or service account."""

    ACTIVE = "ACTIVE"
    """In use."""
    DISABLED = "DISABLED"
    """Disabled: no logins, and its tokens are no longer active."""
    UNSPECIFIED = "UNSPECIFIED"
    """The service did not say."""


def _state(value: int) -> ResourceState:
    # The three resource enums share their numbering: 1 active, 2 disabled.
    match value:
        case 1:
            return ResourceState.ACTIVE
        case 2:
            return ResourceState.DISABLED
        case _:
            return ResourceState.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class TokenPair:
    """An issued access token and, for users, its refresh token."""

    access_token: str = field(repr=False)
    """The signed JWT to send as `authorization: Bearer <token>`."""
    expire_time: datetime
    """When the access token expires."""
    token_id: str
    """The access token's `jti`, for `AuthClient.revoke(jti=...)`."""
    subject: str
    """Resource name of the principal the token is for."""
    tenant: str
    """Resource name of the principal's tenant."""
    scopes: tuple[str, ...]
    """The scopes in the access token."""
    refresh_token: str | None = field(repr=False)
    """The opaque refresh token; None for client credentials."""
    refresh_token_expire_time: datetime | None
    """When the refresh token expires; None when there is none."""
    token_type: str = "Bearer"  # noqa: S105 -- the RFC 6750 token type, not a secret
    """Always "Bearer"."""

    @classmethod
    def from_proto(cls, message: auth_service_pb2.IssueTokenResponse) -> TokenPair:
        """Build from an IssueToken response."""
        return cls(
            access_token=message.access_token,
            expire_time=_time(message.expire_time),
            token_id=message.token_id,
            subject=message.subject,
            tenant=message.tenant,
            scopes=tuple(message.scopes),
            refresh_token=_or_none(message.refresh_token),
            refresh_token_expire_time=optional_time(message, "refresh_token_expire_time"),
            token_type=message.token_type or "Bearer",
        )


@dataclass(frozen=True, slots=True)
class Introspection:
    """RFC 7662 introspection of a token; when `active` is False every other field is empty."""

    active: bool
    """Whether the token is valid, unexpired, unrevoked, and of an enabled principal."""
    token_type: str | None = None
    """Either `access_token` or `refresh_token`."""
    subject: str | None = None
    """Resource name of the principal."""
    tenant: str | None = None
    """Resource name of the principal's tenant."""
    username: str | None = None
    """The username, for user tokens."""
    client_id: str | None = None
    """A service account's client id."""
    scopes: tuple[str, ...] = ()
    """The token's scopes."""
    roles: tuple[str, ...] = ()
    """Resource names of the roles in the token."""
    audiences: tuple[str, ...] = ()
    """The token's audiences."""
    issuer: str | None = None
    """The token's issuer."""
    token_id: str | None = None
    """The token's `jti`."""
    expire_time: datetime | None = None
    """When the token expires."""
    issue_time: datetime | None = None
    """When the token was issued."""
    not_before_time: datetime | None = None
    """Not valid before this time."""

    @classmethod
    def from_proto(cls, message: auth_service_pb2.IntrospectTokenResponse) -> Introspection:
        """Build from an IntrospectToken response."""
        if not message.active:
            return cls(active=False)
        return cls(
            active=True,
            token_type=_or_none(message.token_type),
            subject=_or_none(message.subject),
            tenant=_or_none(message.tenant),
            username=_or_none(message.username),
            client_id=_or_none(message.client_id),
            scopes=tuple(message.scopes),
            roles=tuple(message.roles),
            audiences=tuple(message.audiences),
            issuer=_or_none(message.issuer),
            token_id=_or_none(message.token_id),
            expire_time=optional_time(message, "expire_time"),
            issue_time=optional_time(message, "issue_time"),
            not_before_time=optional_time(message, "not_before_time"),
        )


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant."""

    name: str
    """Resource name, e.g. `tenants/acme`."""
    display_name: str
    """Human-readable name."""
    state: ResourceState
    """Active or disabled."""
    create_time: datetime | None
    """When it was created."""
    update_time: datetime | None
    """When it last changed."""

    @classmethod
    def from_proto(cls, message: resources_pb2.Tenant) -> Tenant:
        """Build from the resource message."""
        return cls(
            name=message.name,
            display_name=message.display_name,
            state=_state(message.state),
            create_time=optional_time(message, "create_time"),
            update_time=optional_time(message, "update_time"),
        )


@dataclass(frozen=True, slots=True)
class User:
    """A user of a tenant."""

    name: str
    """Resource name, e.g. `tenants/acme/users/alice`."""
    uid: str
    """Server-assigned unique id, never reused."""
    display_name: str
    """Human-readable name."""
    email: str
    """E-mail address, when given."""
    state: ResourceState
    """Active or disabled."""
    create_time: datetime | None
    """When it was created."""
    update_time: datetime | None
    """When it last changed."""

    @classmethod
    def from_proto(cls, message: resources_pb2.User) -> User:
        """Build from the resource message."""
        return cls(
            name=message.name,
            uid=message.uid,
            display_name=message.display_name,
            email=message.email,
            state=_state(message.state),
            create_time=optional_time(message, "create_time"),
            update_time=optional_time(message, "update_time"),
        )


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A service account of a tenant (never its secret)."""

    name: str
    """Resource name, e.g. `tenants/acme/serviceAccounts/payments-api`."""
    uid: str
    """Server-assigned unique id, never reused."""
    display_name: str
    """Human-readable name."""
    description: str
    """What the account is for."""
    client_id: str
    """The client id of the client credentials grant."""
    state: ResourceState
    """Active or disabled."""
    create_time: datetime | None
    """When it was created."""
    update_time: datetime | None
    """When it last changed."""

    @classmethod
    def from_proto(cls, message: resources_pb2.ServiceAccount) -> ServiceAccount:
        """Build from the resource message."""
        return cls(
            name=message.name,
            uid=message.uid,
            display_name=message.display_name,
            description=message.description,
            client_id=message.client_id,
            state=_state(message.state),
            create_time=optional_time(message, "create_time"),
            update_time=optional_time(message, "update_time"),
        )


@dataclass(frozen=True, slots=True)
class CreatedServiceAccount:
    """A new service account and its client secret, shown this once."""

    service_account: ServiceAccount
    """The service account."""
    client_secret: str = field(repr=False)
    """The client secret; stored by the service only as a hash."""


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    """A role held by a principal."""

    principal: str
    """Resource name of the user or service account."""
    role: str
    """Resource name of the role."""
    create_time: datetime | None
    """When it was assigned."""

    @classmethod
    def from_proto(cls, message: resources_pb2.RoleAssignment) -> RoleAssignment:
        """Build from the resource message."""
        return cls(message.principal, message.role, optional_time(message, "create_time"))


@dataclass(frozen=True, slots=True)
class RolePermission:
    """A permission granted to a role."""

    role: str
    """Resource name of the role."""
    permission: str
    """The permission, "resource:action"."""
    create_time: datetime | None
    """When it was granted."""

    @classmethod
    def from_proto(cls, message: resources_pb2.RolePermission) -> RolePermission:
        """Build from the resource message."""
        return cls(message.role, message.permission, optional_time(message, "create_time"))


@dataclass(frozen=True, slots=True)
class SigningKeyInfo:
    """A signing key's public description."""

    key_id: str
    """The `kid` its tokens carry."""
    algorithm: str
    """Its JWS algorithm."""
    active: bool
    """Whether it signs new tokens (False: retired, still verifying its tokens)."""
    create_time: datetime | None
    """When it was made."""
    retire_time: datetime | None
    """When it was retired, if it was."""

    @classmethod
    def from_proto(cls, message: resources_pb2.SigningKey) -> SigningKeyInfo:
        """Build from the resource message."""
        return cls(
            key_id=message.key_id,
            algorithm=message.algorithm,
            active=message.state == resources_pb2.SigningKey.STATE_ACTIVE,
            create_time=optional_time(message, "create_time"),
            retire_time=optional_time(message, "retire_time"),
        )


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """The outcome of a signing key rotation."""

    active: SigningKeyInfo
    """The new active key."""
    retired: SigningKeyInfo | None
    """The key it replaced, if there was one."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list call."""

    items: tuple[T, ...]
    """The items of this page."""
    next_page_token: str | None
    """Pass as `page_token` to get the next page; None on the last page."""

    @classmethod
    def of(cls, messages: Sequence[M], convert: Callable[[M], T], next_page_token: str) -> Page[T]:
        """Convert each message of a page."""
        return cls(tuple(convert(message) for message in messages), next_page_token or None)
