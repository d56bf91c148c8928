"""The auth service's tables, as SQLAlchemy 2 typed models.

Every table name starts with `auth_`, so the fleet can share one PostgreSQL database
(each service also keeps its own Alembic version table). Times are stored in UTC and
read back as aware datetimes on both backends (SQLite keeps no time zone: `UtcDateTime`
restores it).

- `auth_tenants`, `auth_users`, `auth_service_accounts`: the directory. Users are unique
  per (tenant, username), service accounts per (tenant, account id) and by client id.
- `auth_signing_keys`: private keys sealed by `PrivateKeyCipher`; `active_slot` is 1 on the
  one active key and NULL on retired ones, so a unique constraint (NULLs are distinct on
  both backends) forbids two active keys even when two replicas rotate at once.
- `auth_refresh_token_families`, `auth_refresh_tokens`: the rows of `_refresh_tokens`.
- `auth_revoked_tokens` (by jti, kept until the token would have expired) and
  `auth_subject_revocations` (every token of a subject issued before `not_before`).
- `auth_policy_lines` (Casbin's ptype, v0..v5, and when the line was stored) and
  `auth_policy_version`, one row whose counter every policy change bumps, so replicas
  notice a change by polling one integer.
- `auth_access_state_version`: the same kind of counter for what makes a signed token
  unacceptable (revocations, disabled tenants and principals), bumped by every such change.
- `auth_request_records`: the first outcome of each mutation sent with a `request_id`, per
  caller, kept for a day so a retry gets that outcome instead of a second mutation.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Constraint names spelled out, so migrations and autogenerate agree on both backends.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH: Final = 63
"""Longest tenant, user, service account or role id (the contract's limit)."""
NAME_LENGTH: Final = 255
"""Longest resource name, display name, e-mail or policy field."""
POLICY_FIELDS: Final = 6
"""Casbin adapters store v0..v5."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back time-zone aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes (their zone is a guess) and store the UTC instant."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be time-zone aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """The stored instant, as an aware UTC datetime."""
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class State(enum.StrEnum):
    """Lifecycle state of a tenant, user or service account."""

    ACTIVE = "active"
    """Can log in or obtain tokens."""
    DISABLED = "disabled"
    """Cannot, and its existing tokens no longer verify."""


class Base(DeclarativeBase):
    """Declarative base of the auth tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantRow(Base):
    """A tenant, `tenants/{tenant_id}`."""

    __tablename__ = "auth_tenants"

    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    state: Mapped[str] = mapped_column(String(16), default=State.ACTIVE.value)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    update_time: Mapped[datetime] = mapped_column(UtcDateTime)

    @property
    def name(self) -> str:
        """The resource name, `tenants/{tenant_id}`."""
        return f"tenants/{self.tenant_id}"


class UserRow(Base):
    """A user, `tenants/{tenant_id}/users/{username}`, with an argon2id password hash."""

    __tablename__ = "auth_users"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)

    uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey(TenantRow.tenant_id, ondelete="CASCADE")
    )
    username: Mapped[str] = mapped_column(String(ID_LENGTH))
    display_name: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    email: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    password_hash: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    state: Mapped[str] = mapped_column(String(16), default=State.ACTIVE.value)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    update_time: Mapped[datetime] = mapped_column(UtcDateTime)

    @property
    def name(self) -> str:
        """The resource name, `tenants/{tenant_id}/users/{username}`."""
        return f"tenants/{self.tenant_id}/users/{self.username}"


class ServiceAccountRow(Base):
    """A service account, `tenants/{tenant_id}/serviceAccounts/{account_id}`."""

    __tablename__ = "auth_service_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "account_id"),)

    uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey(TenantRow.tenant_id, ondelete="CASCADE")
    )
    account_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    display_name: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    description: Mapped[str] = mapped_column(String(1024), default="")
    client_id: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(NAME_LENGTH))
    state: Mapped[str] = mapped_column(String(16), default=State.ACTIVE.value)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    update_time: Mapped[datetime] = mapped_column(UtcDateTime)

    @property
    def name(self) -> str:
        """The resource name, `tenants/{tenant_id}/serviceAccounts/{account_id}`."""
        return f"tenants/{self.tenant_id}/serviceAccounts/{self.account_id}"


class SigningKeyRow(Base):
    """A signing key; the private key sealed by `PrivateKeyCipher`."""

    __tablename__ = "auth_signing_keys"

    key_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    retire_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expire_time: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    active_slot: Mapped[int | None] = mapped_column(Integer, unique=True)


class RefreshTokenFamilyRow(Base):
    """A refresh-token family (`RefreshTokenFamily`)."""

    __tablename__ = "auth_refresh_token_families"

    family_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    tenant: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    scopes: Mapped[str] = mapped_column(String(4096), default="")
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    expire_time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoke_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshTokenRow(Base):
    """One refresh token by hash (`RefreshTokenRecord`)."""

    __tablename__ = "auth_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey(RefreshTokenFamilyRow.family_id, ondelete="CASCADE"),
        index=True,
    )
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    expire_time: Mapped[datetime] = mapped_column(UtcDateTime)
    rotate_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    successor_hash: Mapped[str | None] = mapped_column(String(64))


class RevokedTokenRow(Base):
    """An access token revoked by jti, remembered until it would have expired anyway."""

    __tablename__ = "auth_revoked_tokens"

    token_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    revoke_time: Mapped[datetime] = mapped_column(UtcDateTime)
    expire_time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SubjectRevocationRow(Base):
    """Every token of `subject` issued before `not_before` is revoked."""

    __tablename__ = "auth_subject_revocations"

    subject: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)


class PolicyLineRow(Base):
    """A Casbin policy line, as Casbin's SQL adapters store one (ptype, v0..v5)."""

    __tablename__ = "auth_policy_lines"
    __table_args__ = (
        UniqueConstraint("ptype", "v0", "v1", "v2", "v3", "v4", "v5"),
        # The domain is v1 of a grant and v2 of an assignment: loading one tenant's lines.
        Index("ix_auth_policy_lines_v1", "v1"),
        Index("ix_auth_policy_lines_v2", "v2"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    ptype: Mapped[str] = mapped_column(String(8))
    # Empty rather than NULL: NULLs are distinct, and the unique constraint would not hold.
    v0: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    v1: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    v2: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    v3: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    v4: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    v5: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    # When the line was first stored; NULL for lines stored before revision 0002 kept it.
    create_time: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PolicyVersionRow(Base):
    """The policy version counter: one row, bumped by every policy change."""

    __tablename__ = "auth_policy_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class AccessStateVersionRow(Base):
    """The access-state version counter: one row, bumped by every revocation and by every
    tenant, user or service account disabled."""

    __tablename__ = "auth_access_state_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class RequestRecordRow(Base):
    """The outcome of a mutation a caller sent with a `request_id`, kept until `expire_time`."""

    __tablename__ = "auth_request_records"

    caller: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    method: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the method and the request's fields (never of a password or secret).
    fingerprint: Mapped[str] = mapped_column(String(64))
    # What the first call produced: a resource name, a time, key ids (`_request_records`).
    outcome: Mapped[str] = mapped_column(String(1024))
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    expire_time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
