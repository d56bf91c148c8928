"""`mainmast-auth`: the command line of the auth service."""

from __future__ import annotations

import asyncio

import click
from pydantic import ValidationError

from mainmast.db import DatabaseUrlError
from mainmast.errors import UnavailableError
from mainmast.logging import configure_logging
from mainmast.runtime import service_cli

from ._cli_admin import add_admin_commands
from ._store_migrations import migrate_database
from .service import AuthService
from .settings import AuthSettings


def build_cli() -> click.Group:
    """The `mainmast-auth` command group: `serve` (from the runtime), `migrate`, and the
    administrative commands working straight on the database."""
    group = service_cli(AuthService, AuthSettings)

    @group.command(help="Bring the auth database up to date (serve also does this at start).")
    @click.option(
        "--revision",
        default="head",
        show_default=True,
        help="The Alembic revision to upgrade to.",
    )
    def migrate(revision: str) -> None:
        """Apply pending migrations to the database of MAINMAST_AUTH_DATABASE_URL."""
        try:
            settings = AuthSettings()
        except ValidationError as exc:
            raise click.UsageError(f"invalid settings:\n{exc}") from exc
        configure_logging(level=settings.log_level, json=settings.log_json)
        try:
            heads = asyncio.run(migrate_database(settings.database_target(), revision=revision))
        except DatabaseUrlError as exc:
            raise click.UsageError(f"MAINMAST_AUTH_DATABASE_URL: {exc}") from exc
        except UnavailableError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"auth database at revision {', '.join(heads) or '(none)'}")

    add_admin_commands(group)
    return group


def main() -> None:
    """Run `mainmast-auth` (`serve`, `migrate`, and the service's administrative commands)."""
    build_cli()(prog_name="mainmast-auth")
