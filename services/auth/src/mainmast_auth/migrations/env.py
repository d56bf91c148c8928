"""Alembic environment of the auth service: its tables, migrated through mainmast.db."""

from mainmast.db import run_migrations
from mainmast_auth._models import Base

run_migrations(target_metadata=Base.metadata)
