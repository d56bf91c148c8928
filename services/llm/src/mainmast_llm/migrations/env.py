"""Alembic environment of the llm service: its tables, migrated through mainmast.db."""

from mainmast.db import run_migrations
from mainmast_llm._ledger_schema import ledger_metadata

run_migrations(target_metadata=ledger_metadata)
