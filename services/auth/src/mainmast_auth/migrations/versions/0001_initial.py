"""The auth service's first tables: directory, signing keys, refresh tokens, revocations, policy.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.String(63)
_NAME = sa.String(255)


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of the auth service, and the policy version row."""
    op.create_table(
        "auth_tenants",
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("display_name", _NAME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _time("create_time"),
        _time("update_time"),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_auth_tenants"),
    )
    op.create_table(
        "auth_users",
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("username", _ID, nullable=False),
        sa.Column("display_name", _NAME, nullable=False),
        sa.Column("email", _NAME, nullable=False),
        sa.Column("password_hash", _NAME, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        _time("create_time"),
        _time("update_time"),
        sa.PrimaryKeyConstraint("uid", name="pk_auth_users"),
        sa.UniqueConstraint("tenant_id", "username", name="uq_auth_users_tenant_id_username"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["auth_tenants.tenant_id"],
            name="fk_auth_users_tenant_id_auth_tenants",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "auth_service_accounts",
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("display_name", _NAME, nullable=False),
        sa.Column("description", sa.String(1024), nullable=False),
        sa.Column("client_id", _NAME, nullable=False),
        sa.Column("secret_hash", _NAME, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _time("create_time"),
        _time("update_time"),
        sa.PrimaryKeyConstraint("uid", name="pk_auth_service_accounts"),
        sa.UniqueConstraint(
            "tenant_id", "account_id", name="uq_auth_service_accounts_tenant_id_account_id"
        ),
        sa.UniqueConstraint("client_id", name="uq_auth_service_accounts_client_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["auth_tenants.tenant_id"],
            name="fk_auth_service_accounts_tenant_id_auth_tenants",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "auth_signing_keys",
        sa.Column("key_id", _NAME, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=False),
        _time("create_time"),
        _time("retire_time", nullable=True),
        _time("expire_time", nullable=True),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_auth_signing_keys"),
        sa.UniqueConstraint("active_slot", name="uq_auth_signing_keys_active_slot"),
    )
    op.create_index("ix_auth_signing_keys_expire_time", "auth_signing_keys", ["expire_time"])
    op.create_table(
        "auth_refresh_token_families",
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("subject", _NAME, nullable=False),
        sa.Column("tenant", _NAME, nullable=False),
        sa.Column("scopes", sa.String(4096), nullable=False),
        _time("create_time"),
        _time("expire_time"),
        _time("revoke_time", nullable=True),
        sa.Column("revoke_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("family_id", name="pk_auth_refresh_token_families"),
    )
    for column in ("subject", "tenant", "expire_time"):
        op.create_index(
            f"ix_auth_refresh_token_families_{column}", "auth_refresh_token_families", [column]
        )
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(36), nullable=False),
        _time("create_time"),
        _time("expire_time"),
        _time("rotate_time", nullable=True),
        sa.Column("successor_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_auth_refresh_tokens"),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["auth_refresh_token_families.family_id"],
            name="fk_auth_refresh_tokens_family_id_auth_refresh_token_families",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_auth_refresh_tokens_family_id", "auth_refresh_tokens", ["family_id"])
    op.create_table(
        "auth_revoked_tokens",
        sa.Column("token_id", _NAME, nullable=False),
        _time("revoke_time"),
        _time("expire_time"),
        sa.PrimaryKeyConstraint("token_id", name="pk_auth_revoked_tokens"),
    )
    op.create_index("ix_auth_revoked_tokens_expire_time", "auth_revoked_tokens", ["expire_time"])
    op.create_table(
        "auth_subject_revocations",
        sa.Column("subject", _NAME, nullable=False),
        _time("not_before"),
        sa.PrimaryKeyConstraint("subject", name="pk_auth_subject_revocations"),
    )
    op.create_table(
        "auth_policy_lines",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ptype", sa.String(8), nullable=False),
        *(sa.Column(f"v{index}", _NAME, nullable=False) for index in range(6)),
        sa.PrimaryKeyConstraint("id", name="pk_auth_policy_lines"),
        sa.UniqueConstraint(
            "ptype",
            "v0",
            "v1",
            "v2",
            "v3",
            "v4",
            "v5",
            name="uq_auth_policy_lines_ptype_v0_v1_v2_v3_v4_v5",
        ),
    )
    op.create_index("ix_auth_policy_lines_v1", "auth_policy_lines", ["v1"])
    op.create_index("ix_auth_policy_lines_v2", "auth_policy_lines", ["v2"])
    version = op.create_table(
        "auth_policy_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_policy_version"),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])


def downgrade() -> None:
    """Drop every table of the auth service."""
    for table in (
        "auth_policy_version",
        "auth_policy_lines",
        "auth_subject_revocations",
        "auth_revoked_tokens",
        "auth_refresh_tokens",
        "auth_refresh_token_families",
        "auth_signing_keys",
        "auth_service_accounts",
        "auth_users",
        "auth_tenants",
    ):
        op.drop_table(table)
