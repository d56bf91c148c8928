"""`mainmast-auth`'s administrative commands, each run as its own process as an operator would."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from mainmast.auth import KeySet, TokenVerifier, VerificationPolicy
from mainmast.db import DatabasePool
from mainmast_auth._authorizer import Authorizer
from mainmast_auth._keys import hmac_signing_key
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._servicer_keys import signing_key_cipher
from mainmast_auth._store_directory import get_service_account, get_user
from mainmast_auth._store_keys import load_key_ring
from mainmast_auth._store_policies import load_policy
from mainmast_auth.settings import AuthSettings

_RUN_CLI = "from mainmast_auth.cli import main; main()"
_ADMIN_PASSWORD = "Correct-Horse-Battery-7"
_USER_PASSWORD = "Staple-Lantern-Orbit-42"


class Cli:
    """Runs `mainmast-auth` against one database and data folder."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "MAINMAST_AUTH_DATABASE_URL": database_url,
            "MAINMAST_DATA_DIR": str(data_dir),
            "MAINMAST_AUTH_LOG_JSON": "true",
        }

    async def run(self, *arguments: str, stdin: str = "") -> tuple[int, str, str]:
        """Exit code, stdout and stderr of one run."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RUN_CLI,
            *arguments,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await process.communicate(stdin.encode())
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    async def json(self, *arguments: str, stdin: str = "") -> dict[str, Any]:
        """The JSON result of a run that must succeed."""
        code, stdout, stderr = await self.run(*arguments, "--json", stdin=stdin)
        assert code == 0, stderr
        result: dict[str, Any] = orjson.loads(stdout)
        return result


@pytest.fixture
def cli(fresh_database_url: str, tmp_path: Path) -> Cli:
    """The CLI on an empty database of the test's own, on each backend."""
    return Cli(fresh_database_url, tmp_path)


@pytest.fixture
def sqlite_cli(sqlite_url: str, tmp_path: Path) -> Cli:
    """The CLI on an empty SQLite database (for refusals, which do not depend on the backend)."""
    return Cli(sqlite_url, tmp_path)


async def test_the_commands_set_up_a_tenant_its_principals_and_policy(
    cli: Cli, fresh_database_url: str, tmp_path: Path
) -> None:
    admin = await cli.json(
        "bootstrap-admin", "acme", "root", "--password-stdin", stdin=_ADMIN_PASSWORD + "\n"
    )
    tenant = await cli.json("tenant", "create", "beta", "--display-name", "Beta")
    user = await cli.json(
        "user", "create", "beta", "bob", "--password-stdin", stdin=_USER_PASSWORD + "\n"
    )
    account = await cli.json("service-account", "create", "tenants/beta", "ci")
    assigned = await cli.json(
        "role", "assign", "tenants/beta/users/bob", "tenants/beta/roles/admin"
    )
    granted = await cli.json("permission", "grant", "tenants/beta/roles/viewer", "reports:export")
    issued = await cli.json("token", "issue", "tenants/beta/users/bob", "--scope", "reports")

    assert admin == {"user": "tenants/acme/users/root"}
    assert tenant == {"tenant": "tenants/beta"}
    assert user == {"user": "tenants/beta/users/bob"}
    assert account["service_account"] == "tenants/beta/serviceAccounts/ci"
    assert assigned == {"principal": "tenants/beta/users/bob", "role": "tenants/beta/roles/admin"}
    assert granted == {"role": "tenants/beta/roles/viewer", "permission": "reports:export"}

    hasher = PasswordHasher()
    settings = AuthSettings(
        database_url=SecretStr(fresh_database_url),
        signing_key_encryption_key_file=tmp_path / "auth-signing-key-encryption.key",
    )
    now = datetime.now(UTC)
    pool = DatabasePool(fresh_database_url, pool_size=1, max_overflow=0)
    try:
        async with pool.session() as session:
            bob = await get_user(session, "tenants/beta/users/bob")
            root = await get_user(session, "tenants/acme/users/root")
            ci = await get_service_account(session, "tenants/beta/serviceAccounts/ci")
            authorizer = Authorizer((await load_policy(session)).lines)
            ring = await load_key_ring(session, signing_key_cipher(settings), now=now)
    finally:
        await pool.close()
    assert hasher.verify(bob.password_hash, _USER_PASSWORD)
    assert hasher.verify(root.password_hash, _ADMIN_PASSWORD)
    assert account["client_id"] == ci.client_id
    assert hasher.verify(ci.secret_hash, account["client_secret"])
    # Bob's admin role inherits the viewer grant; root administers every tenant.
    assert authorizer.check("tenants/beta/users/bob", "tenants/beta", "reports:export")
    assert not authorizer.check("tenants/beta/serviceAccounts/ci", "tenants/beta", "users:read")
    assert authorizer.check("tenants/acme/users/root", "tenants/beta", "users:create")

    assert ring is not None
    verifier = TokenVerifier(
        ring.verification_keys(now), VerificationPolicy(settings.issuer, settings.audience)
    )
    verified = verifier.verify(issued["access_token"])
    assert verified.subject == "tenants/beta/users/bob"
    assert verified.tenant == "tenants/beta"
    assert issued["roles"] == ["tenants/beta/roles/admin"]
    assert issued["scopes"] == ["reports"]


async def test_plain_output_names_the_result_and_shows_the_secret_once(sqlite_cli: Cli) -> None:
    await sqlite_cli.json("tenant", "create", "beta")
    code, stdout, stderr = await sqlite_cli.run("service-account", "create", "beta", "ci")
    assert code == 0, stderr
    assert stdout.startswith("created tenants/beta/serviceAccounts/ci\n")
    secret = stdout.rsplit("client secret (shown once): ", 1)[1].strip()
    assert len(secret) >= 40
    assert secret not in stderr
    code, stdout, _ = await sqlite_cli.run("token", "issue", "tenants/beta/serviceAccounts/ci")
    assert code == 0
    assert stdout.count(".") == 2  # a bare compact JWT, ready for a shell variable


async def test_a_password_prompt_reads_it_twice_and_never_shows_it(sqlite_cli: Cli) -> None:
    await sqlite_cli.json("tenant", "create", "beta")
    # Without --password-stdin the password is prompted for, with a confirmation.
    code, stdout, stderr = await sqlite_cli.run(
        "user", "create", "beta", "carol", stdin=f"{_USER_PASSWORD}\n{_USER_PASSWORD}\n"
    )
    assert code == 0, stderr
    assert "created tenants/beta/users/carol" in stdout
    assert _USER_PASSWORD not in stdout + stderr


async def test_the_password_is_never_an_argument(sqlite_cli: Cli) -> None:
    code, stdout, stderr = await sqlite_cli.run(
        "user", "create", "beta", "bob", "--password", _USER_PASSWORD
    )
    assert code == 2
    assert "No such option '--password'" in stderr
    assert "Traceback" not in stderr
    assert _USER_PASSWORD not in stdout


@pytest.mark.parametrize(
    ("arguments", "stdin", "message"),
    [
        (("tenant", "create", "B"), "", "The tenant_id must be 2 to 63 lowercase letters"),
        (("user", "create", "beta", "bob", "--password-stdin"), "", "stdin held no password"),
        (("role", "assign", "bob", "tenants/beta/roles/admin"), "", "principal must be a resource"),
        (("permission", "grant", "tenants/beta/roles/admin", "nonsense"), "", "permission"),
        (("token", "issue", "tenants/beta/users/bob", "--scope", 'a"b'), "", "scope"),
        (("bootstrap-admin", "acme", "root", "--password-stdin"), "short\n", "password"),
    ],
)
async def test_bad_input_exits_2_with_one_clear_line(
    sqlite_cli: Cli, arguments: tuple[str, ...], stdin: str, message: str
) -> None:
    code, stdout, stderr = await sqlite_cli.run(*arguments, stdin=stdin)
    assert code == 2, stdout + stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1
    assert message in error_lines[0]
    assert "Traceback" not in stderr
    assert stdout == ""


async def test_refusals_exit_1_with_the_reason(sqlite_cli: Cli) -> None:
    await sqlite_cli.json("tenant", "create", "beta")
    again = await sqlite_cli.run("tenant", "create", "beta")
    missing_user = await sqlite_cli.run("token", "issue", "tenants/beta/users/nobody")
    missing_tenant = await sqlite_cli.run(
        "user", "create", "gamma", "bob", "--password-stdin", stdin=_USER_PASSWORD + "\n"
    )
    for code, stdout, stderr in (again, missing_user, missing_tenant):
        assert code == 1, stderr
        assert stdout == ""
        assert "Traceback" not in stderr
        assert _USER_PASSWORD not in stderr
    assert "already exists" in again[2]
    assert "tenants/beta/users/nobody" in missing_user[2]
    assert "not found" in missing_user[2]
    assert "gamma" in missing_tenant[2]


async def test_a_second_bootstrap_admin_of_the_same_user_is_refused(sqlite_cli: Cli) -> None:
    await sqlite_cli.json(
        "bootstrap-admin", "acme", "root", "--password-stdin", stdin=_ADMIN_PASSWORD + "\n"
    )
    code, stdout, stderr = await sqlite_cli.run(
        "bootstrap-admin", "acme", "root", "--password-stdin", stdin=_ADMIN_PASSWORD + "\n"
    )
    assert code == 1
    assert "already exists" in stderr
    assert _ADMIN_PASSWORD not in stdout + stderr


async def test_token_help_says_it_bypasses_login(sqlite_cli: Cli) -> None:
    code, stdout, _ = await sqlite_cli.run("token", "issue", "--help")
    assert code == 0
    assert "BYPASSES LOGIN" in " ".join(stdout.split())


async def test_token_issue_signs_with_the_hs256_secret_when_one_is_configured(
    sqlite_cli: Cli,
) -> None:
    secret = "an HS256 secret of well over thirty-two bytes"
    sqlite_cli.env |= {
        "MAINMAST_AUTH_SIGNING_ALGORITHM": "HS256",
        "MAINMAST_AUTH_SIGNING_HMAC_SECRET": secret,
    }
    await sqlite_cli.json("tenant", "create", "beta")
    await sqlite_cli.json(
        "user", "create", "beta", "bob", "--password-stdin", stdin=_USER_PASSWORD + "\n"
    )
    issued = await sqlite_cli.json("token", "issue", "tenants/beta/users/bob")

    key = hmac_signing_key(secret.encode(), create_time=datetime.now(UTC))
    verifier = TokenVerifier(
        KeySet([key.verification_key()]),
        VerificationPolicy("mainmast-auth", "mainmast", algorithms=frozenset({"HS256"})),
    )
    assert verifier.verify(issued["access_token"]).subject == "tenants/beta/users/bob"
