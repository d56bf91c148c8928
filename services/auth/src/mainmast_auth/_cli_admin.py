"""`mainmast-auth`'s administrative commands: tenants, users, service accounts, roles,
tokens and the first platform admin, straight on the service's database.

Each prints a short result, or one JSON object with `--json`; logs go to stderr. A
password is read from stdin (`--password-stdin`) or a hidden prompt, never taken as an
argument (arguments show in `ps` and shell history) and never printed. Bad input exits
2 and every other refusal 1, each with one line saying why and no traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import orjson
from pydantic import ValidationError as SettingsError

from mainmast.db import DatabaseUrlError
from mainmast.errors import MainmastError, ValidationError
from mainmast.logging import configure_logging

from ._admin_service import bootstrap_platform_admin
from ._bootstrap import tenant_resource_name
from ._operator import OPERATOR, issue_token, open_database, operator_admin
from ._passwords import PasswordHasher
from .settings import AuthSettings

T = TypeVar("T")

_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object."
)
_password_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin instead of prompting for it.",
)


def _settings() -> AuthSettings:
    try:
        settings = AuthSettings()
    except SettingsError as exc:
        raise click.UsageError(f"invalid settings:\n{exc}") from exc
    configure_logging(level=settings.log_level, json=settings.log_json, stream=sys.stderr)
    return settings


def _run(action: Callable[[AuthSettings], Coroutine[Any, Any, T]]) -> T:
    """Run `action` on fresh settings, turning refusals into one-line CLI errors."""
    settings = _settings()
    try:
        return asyncio.run(action(settings))
    except DatabaseUrlError as exc:
        raise click.UsageError(f"MAINMAST_AUTH_DATABASE_URL: {exc}") from exc
    except ValidationError as exc:
        raise click.UsageError(exc.message) from exc
    except MainmastError as exc:
        raise click.ClickException(exc.message) from exc


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: stdin held no password")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _print(as_json: bool, text: str, fields: dict[str, Any]) -> None:
    if as_json:
        click.echo(orjson.dumps(fields).decode())
    else:
        click.echo(text)


def add_admin_commands(group: click.Group) -> None:
    """Add the administrative commands to the `mainmast-auth` group."""
    for command in (
        _tenant_commands(),
        _user_commands(),
        _service_account_commands(),
        _role_commands(),
        _permission_commands(),
        _token_commands(),
        _bootstrap_admin_command(),
    ):
        group.add_command(command)


def _tenant_commands() -> click.Group:
    @click.group(help="Manage tenants.")
    def tenant() -> None:
        """Tenant commands."""

    @tenant.command("create", help="Create tenant ID with its default roles.")
    @click.argument("tenant_id", metavar="ID")
    @click.option("--display-name", default="", help="A human-readable name.")
    @_json_option
    def create_tenant(tenant_id: str, display_name: str, as_json: bool) -> None:
        """Create a tenant."""

        async def action(settings: AuthSettings) -> str:
            async with operator_admin(settings) as admin:
                row = await admin.create_tenant(OPERATOR, tenant_id, display_name=display_name)
                return row.name

        name = _run(action)
        _print(as_json, f"created {name}", {"tenant": name})

    return tenant


def _user_commands() -> click.Group:
    @click.group(help="Manage users.")
    def user() -> None:
        """User commands."""

    @user.command("create", help="Create user USERNAME in TENANT (an id or tenants/ID).")
    @click.argument("tenant_value", metavar="TENANT")
    @click.argument("username")
    @click.option("--display-name", default="", help="A human-readable name.")
    @click.option("--email", default="", help="The user's email address.")
    @_password_option
    @_json_option
    def create_user(
        *,
        tenant_value: str,
        username: str,
        display_name: str,
        email: str,
        password_stdin: bool,
        as_json: bool,
    ) -> None:
        """Create a user."""
        password = _password(password_stdin)

        async def action(settings: AuthSettings) -> str:
            async with operator_admin(settings) as admin:
                row = await admin.create_user(
                    OPERATOR,
                    tenant_resource_name(tenant_value),
                    username,
                    password=password,
                    display_name=display_name,
                    email=email,
                )
                return row.name

        name = _run(action)
        _print(as_json, f"created {name}", {"user": name})

    return user


def _service_account_commands() -> click.Group:
    @click.group("service-account", help="Manage service accounts.")
    def service_account() -> None:
        """Service account commands."""

    @service_account.command(
        "create",
        help="Create service account ID in TENANT; prints its client secret, this once only.",
    )
    @click.argument("tenant_value", metavar="TENANT")
    @click.argument("account_id", metavar="ID")
    @click.option("--display-name", default="", help="A human-readable name.")
    @click.option("--description", default="", help="What the account is for.")
    @_json_option
    def create_service_account(
        tenant_value: str, account_id: str, display_name: str, description: str, as_json: bool
    ) -> None:
        """Create a service account."""

        async def action(settings: AuthSettings) -> tuple[str, str, str]:
            async with operator_admin(settings) as admin:
                created = await admin.create_service_account(
                    OPERATOR,
                    tenant_resource_name(tenant_value),
                    account_id,
                    display_name=display_name,
                    description=description,
                )
                account = created.account
                return account.name, account.client_id, created.client_secret

        name, client_id, secret = _run(action)
        _print(
            as_json,
            f"created {name}\nclient id: {client_id}\nclient secret (shown once): {secret}",
            {"service_account": name, "client_id": client_id, "client_secret": secret},
        )

    return service_account


def _role_commands() -> click.Group:
    @click.group(help="Manage role assignments.")
    def role() -> None:
        """Role commands."""

    @role.command(
        "assign",
        help="Give PRINCIPAL (tenants/T/users/U or tenants/T/serviceAccounts/S) the ROLE "
        "(tenants/T/roles/R or roles/platform-admin).",
    )
    @click.argument("principal")
    @click.argument("role_name", metavar="ROLE")
    @_json_option
    def assign_role(principal: str, role_name: str, as_json: bool) -> None:
        """Assign a role."""

        async def action(settings: AuthSettings) -> None:
            async with operator_admin(settings) as admin:
                await admin.assign_role(OPERATOR, principal, role_name)

        _run(action)
        _print(
            as_json,
            f"{principal} holds {role_name}",
            {"principal": principal, "role": role_name},
        )

    return role


def _permission_commands() -> click.Group:
    @click.group(help="Manage the permissions of roles.")
    def permission() -> None:
        """Permission commands."""

    @permission.command("grant", help="Grant PERMISSION (resource:action) to ROLE.")
    @click.argument("role_name", metavar="ROLE")
    @click.argument("permission_name", metavar="PERMISSION")
    @_json_option
    def grant_permission(role_name: str, permission_name: str, as_json: bool) -> None:
        """Grant a permission."""

        async def action(settings: AuthSettings) -> None:
            async with operator_admin(settings) as admin:
                await admin.grant_role_permission(OPERATOR, role_name, permission_name)

        _run(action)
        _print(
            as_json,
            f"{role_name} is granted {permission_name}",
            {"role": role_name, "permission": permission_name},
        )

    return permission


def _token_commands() -> click.Group:
    @click.group(help="Issue tokens.")
    def token() -> None:
        """Token commands."""

    @token.command(
        "issue",
        help="Issue an access token for PRINCIPAL with its current roles. This BYPASSES "
        "LOGIN (no password, no throttling): for operators and tests only.",
    )
    @click.argument("principal")
    @click.option("--scope", "scopes", multiple=True, help="A scope to include; repeatable.")
    @_json_option
    def issue(principal: str, scopes: tuple[str, ...], as_json: bool) -> None:
        """Issue an access token."""

        async def action(settings: AuthSettings) -> dict[str, Any]:
            async with open_database(settings) as database:
                access = await issue_token(database, settings, principal, scopes)
            return {
                "access_token": access.token,
                "token_type": "Bearer",
                "token_id": access.token_id,
                "subject": access.subject,
                "tenant": access.tenant,
                "roles": list(access.roles),
                "scopes": list(access.scopes),
                "expire_time": access.expire_time.isoformat(),
            }

        fields = _run(action)
        _print(as_json, str(fields["access_token"]), fields)

    return token


def _bootstrap_admin_command() -> click.Command:
    @click.command(
        "bootstrap-admin",
        help="Create the first platform admin: user USERNAME of TENANT (created unless it "
        "exists) holding roles/platform-admin.",
    )
    @click.argument("tenant_value", metavar="TENANT")
    @click.argument("username")
    @_password_option
    @_json_option
    def bootstrap_admin(
        tenant_value: str, username: str, password_stdin: bool, as_json: bool
    ) -> None:
        """Create the first platform admin."""
        password = _password(password_stdin)

        async def action(settings: AuthSettings) -> str:
            async with open_database(settings) as database:
                hasher = await asyncio.to_thread(
                    PasswordHasher, settings.password_hash_parameters()
                )
                return await bootstrap_platform_admin(
                    database,
                    hasher,
                    tenant=tenant_resource_name(tenant_value),
                    username=username,
                    password=password,
                )

        name = _run(action)
        _print(as_json, f"created platform admin {name}", {"user": name})

    return bootstrap_admin
