"""The llm service's first table: the usage ledger, one row per call.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NAME = sa.String(255)


def upgrade() -> None:
    """Create `llm_usage_records` and its indexes."""
    op.create_table(
        "llm_usage_records",
        sa.Column("record_id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("tenant", _NAME, nullable=False),
        sa.Column("subject", _NAME, nullable=False),
        sa.Column("model_alias", _NAME, nullable=False),
        sa.Column("deployment", _NAME, nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", _NAME, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("latency_micros", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("usage_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name="pk_llm_usage_records"),
    )
    op.create_index(
        "ix_llm_usage_records_tenant_usage_date_model_alias",
        "llm_usage_records",
        ["tenant", "usage_date", "model_alias"],
    )
    op.create_index(
        "ix_llm_usage_records_tenant_request_id",
        "llm_usage_records",
        ["tenant", "request_id"],
        unique=True,
    )


def downgrade() -> None:
    """Drop the usage ledger."""
    op.drop_index("ix_llm_usage_records_tenant_request_id", table_name="llm_usage_records")
    op.drop_index(
        "ix_llm_usage_records_tenant_usage_date_model_alias", table_name="llm_usage_records"
    )
    op.drop_table("llm_usage_records")
