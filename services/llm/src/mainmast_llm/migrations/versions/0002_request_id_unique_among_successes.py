"""A request id is unique per tenant among successful calls only.

Every call is recorded, refusals and failures included; a caller retrying a refused call
under its request id must not find its eventual success skipped as a duplicate of the
refusal. Successes stay unique, so a success retried is still counted once.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INDEX = "ix_llm_usage_records_tenant_request_id"
_TABLE = "llm_usage_records"
_SUCCEEDED_ONLY = sa.text("outcome = 'succeeded'")


def upgrade() -> None:
    """Make the (tenant, request_id) index cover succeeded calls only."""
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(
        _INDEX,
        _TABLE,
        ["tenant", "request_id"],
        unique=True,
        sqlite_where=_SUCCEEDED_ONLY,
        postgresql_where=_SUCCEEDED_ONLY,
    )


def downgrade() -> None:
    """Make the index cover every call again; failures sharing a request id with another
    row of their tenant are deleted first, the success (or the earliest row) kept."""
    op.execute(
        sa.text(
            "DELETE FROM llm_usage_records WHERE request_id IS NOT NULL"
            " AND outcome <> 'succeeded' AND EXISTS ("
            " SELECT 1 FROM llm_usage_records AS other"
            " WHERE other.tenant = llm_usage_records.tenant"
            " AND other.request_id = llm_usage_records.request_id"
            " AND (other.outcome = 'succeeded' OR other.occurred_at < llm_usage_records.occurred_at"
            " OR (other.occurred_at = llm_usage_records.occurred_at"
            " AND other.record_id < llm_usage_records.record_id)))"
        )
    )
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, ["tenant", "request_id"], unique=True)
