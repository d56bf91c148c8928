"""Alembic environment of the test migration set: the two lines a service's env.py has."""

from mainmast.db import run_migrations

run_migrations()
