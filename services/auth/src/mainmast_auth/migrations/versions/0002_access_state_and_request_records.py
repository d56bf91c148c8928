"""The access-state version, request records for idempotent mutations, policy line times.

- `auth_access_state_version`: one row whose counter every revocation and every disabled
  tenant, user or service account bumps, so replicas reload what they keep in memory.
- `auth_request_records`: the first outcome of a mutation sent with a `request_id`.
- `auth_policy_lines.create_time`: when a role assignment or grant was stored (NULL for
  lines stored before this revision: their time is not known).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_NAME = sa.String(255)


def upgrade() -> None:
    """Add the two tables and the policy lines' create_time."""
    version = op.create_table(
        "auth_access_state_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_access_state_version"),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])
    op.create_table(
        "auth_request_records",
        sa.Column("caller", _NAME, nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(1024), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller", "request_id", name="pk_auth_request_records"),
    )
    op.create_index("ix_auth_request_records_expire_time", "auth_request_records", ["expire_time"])
    with op.batch_alter_table("auth_policy_lines") as table:
        table.add_column(sa.Column("create_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop what `upgrade` added."""
    with op.batch_alter_table("auth_policy_lines") as table:
        table.drop_column("create_time")
    op.drop_table("auth_request_records")
    op.drop_table("auth_access_state_version")
