"""AuthClient against a real auth service on 127.0.0.1, on SQLite and on PostgreSQL.

Principals are seeded straight into the service's database (the admin RPCs are not
served yet); everything else goes through the client: grants, local verification over
the JWKS, rotation, revocation, introspection, and the errors each one raises.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import pytest

from mainmast.auth import (
    AuthClient,
    AuthClientConfig,
    AuthErrorReason,
    Introspection,
    TokenPair,
)
from mainmast.errors import (
    DeadlineExceededError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
)
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._store_directory import create_service_account

ISSUER = "https://auth.test"
AUDIENCE = "mainmast-test"
PASSWORD = "correct horse battery staple"
CLIENT_SECRET = "s3cr3t-client-value-for-tests-only"

Running = Any  # the conftest's `Served`, which a test module cannot import


@pytest.fixture
def serve(serve_auth: Any) -> Any:
    """`async with serve(database) as running:` an auth service with this file's issuer and
    audience."""
    return functools.partial(serve_auth, issuer=ISSUER, audience=AUDIENCE)


async def test_a_login_gives_tokens_that_verify_locally(
    fresh_database_url: str, serve: Any
) -> None:
    async with (
        serve(fresh_database_url) as running,
        AuthClient(config=running.client_config()) as auth,
    ):
        await running.seed("tenants/acme", "alice", role="admin")
        tokens = await auth.login("tenants/acme", "alice", PASSWORD)
        verified = await auth.verify(tokens.access_token)
        fetches = auth.key_fetches

    assert isinstance(tokens, TokenPair)
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.startswith("mmrt_")
    assert tokens.refresh_token_expire_time is not None
    assert tokens.expire_time > tokens.refresh_token_expire_time.replace(year=2000)
    assert (tokens.subject, tokens.tenant) == ("tenants/acme/users/alice", "tenants/acme")
    assert (verified.subject, verified.tenant) == ("tenants/acme/users/alice", "tenants/acme")
    assert verified.token_id == tokens.token_id
    assert verified.roles == ("tenants/acme/roles/admin",)
    assert fetches == 1  # the JWKS fetched at connect; verification made no call
    assert tokens.access_token not in repr(tokens)
    assert tokens.refresh_token not in repr(tokens)


async def test_a_token_of_a_rotated_key_refreshes_the_jwks_once_and_verifies(
    fresh_database_url: str, serve: Any
) -> None:
    async with serve(fresh_database_url) as running:
        await running.seed("tenants/acme", "alice")
        await running.make_platform_admin("tenants/acme/users/alice")
        async with (
            AuthClient(config=running.client_config()) as admin,
            AuthClient(config=running.client_config()) as verifier,
        ):
            before = await admin.login("tenants/acme", "alice", PASSWORD)
            old_key = (await verifier.verify(before.access_token)).key_id
            rotation = await admin.rotate_signing_key(bearer_token=before.access_token)
            after = await admin.login("tenants/acme", "alice", PASSWORD)

            verified = await verifier.verify(after.access_token)
            fetches_after_rotation = verifier.key_fetches
            await verifier.verify(before.access_token)  # the retired key still verifies
            await verifier.verify(after.access_token)
            fetches_at_end = verifier.key_fetches

    assert rotation.retired is not None
    assert rotation.retired.key_id == old_key
    assert not rotation.retired.active
    assert rotation.active.active
    assert verified.key_id == rotation.active.key_id != old_key
    assert fetches_after_rotation == 2
    assert fetches_at_end == 2


async def test_verification_goes_on_after_the_service_stops(sqlite_url: str, serve: Any) -> None:
    auth = AuthClient(config=AuthClientConfig(issuer=ISSUER, audience=AUDIENCE))
    try:
        async with serve(sqlite_url) as running:
            await running.seed("tenants/acme", "alice")
            auth = AuthClient(config=running.client_config())
            await auth.connect()
            tokens = await auth.login("tenants/acme", "alice", PASSWORD)

        verified = await auth.verify(tokens.access_token)
        refreshed = await auth.refresh_keys()
        with pytest.raises(UnavailableError):
            await auth.refresh(tokens.refresh_token or "")
        again = await auth.verify(tokens.access_token)
    finally:
        await auth.close()

    assert verified.subject == again.subject == "tenants/acme/users/alice"
    assert refreshed is False


async def test_a_refresh_rotates_the_pair_and_a_reused_refresh_token_is_refused(
    fresh_database_url: str, serve: Any
) -> None:
    async with (
        serve(fresh_database_url) as running,
        AuthClient(config=running.client_config()) as auth,
    ):
        await running.seed("tenants/acme", "alice")
        first = await auth.login("tenants/acme", "alice", PASSWORD)
        assert first.refresh_token is not None
        second = await auth.refresh(first.refresh_token)
        verified = await auth.verify(second.access_token)
        with pytest.raises(UnauthenticatedError) as reused:
            await auth.refresh(first.refresh_token)

    assert second.refresh_token not in {None, first.refresh_token}
    assert second.token_id != first.token_id
    assert verified.token_id == second.token_id
    assert reused.value.reason == AuthErrorReason.REFRESH_TOKEN_REUSED


async def test_a_revoked_token_introspects_inactive(fresh_database_url: str, serve: Any) -> None:
    async with (
        serve(fresh_database_url) as running,
        AuthClient(config=running.client_config()) as auth,
    ):
        await running.seed("tenants/acme", "alice", "dave")
        alice = await auth.login("tenants/acme", "alice", PASSWORD)
        dave = await auth.login("tenants/acme", "dave", PASSWORD)
        active = await auth.introspect(alice.access_token, bearer_token=dave.access_token)
        revoke_time = await auth.revoke(token=alice.access_token, bearer_token=dave.access_token)
        inactive = await auth.introspect(alice.access_token, bearer_token=dave.access_token)
        # Local verification alone does not see revocations.
        still_verifies = await auth.verify(alice.access_token)

    assert active.active
    assert (active.subject, active.tenant, active.username) == (
        "tenants/acme/users/alice",
        "tenants/acme",
        "alice",
    )
    assert (active.token_type, active.token_id) == ("access_token", alice.token_id)
    assert (active.issuer, active.audiences) == (ISSUER, (AUDIENCE,))
    assert active.expire_time == alice.expire_time
    assert inactive == Introspection(active=False)
    assert revoke_time.tzinfo is not None
    assert still_verifies.token_id == alice.token_id


async def test_with_introspection_revocation_checks_a_revoked_token_fails_to_verify(
    sqlite_url: str, serve: Any
) -> None:
    async with serve(sqlite_url) as running:
        await running.seed("tenants/acme", "alice", "dave")
        async with AuthClient(config=running.client_config(revocation_check="introspect")) as auth:
            alice = await auth.login("tenants/acme", "alice", PASSWORD)
            dave = await auth.login("tenants/acme", "dave", PASSWORD)
            before = await auth.verify(alice.access_token)
            await auth.revoke(token=alice.access_token, bearer_token=alice.access_token)
            with pytest.raises(UnauthenticatedError) as caught:
                await auth.verify(alice.access_token)
            with pytest.raises(UnauthenticatedError) as cached:
                await auth.verify(alice.access_token)
            other = await auth.verify(dave.access_token)

    assert before.token_id == alice.token_id
    assert caught.value.reason == AuthErrorReason.TOKEN_REVOKED
    assert cached.value.reason == AuthErrorReason.TOKEN_REVOKED
    assert other.subject == "tenants/acme/users/dave"


async def test_client_credentials_give_a_service_account_a_token_without_refresh(
    sqlite_url: str, serve: Any
) -> None:
    async with (
        serve(sqlite_url) as running,
        AuthClient(config=running.client_config()) as auth,
    ):
        await running.seed("tenants/acme")
        async with running.service.database.session() as session:
            account = await create_service_account(
                session,
                "tenants/acme",
                "payments-api",
                secret_hash=PasswordHasher().hash(CLIENT_SECRET),
                now=datetime.now(UTC),
            )
        tokens = await auth.client_credentials(
            account.client_id, CLIENT_SECRET, scopes=["payments:write"]
        )
        verified = await auth.verify(tokens.access_token)
        with pytest.raises(UnauthenticatedError) as caught:
            await auth.client_credentials(account.client_id, "a wrong secret")

    assert (tokens.refresh_token, tokens.refresh_token_expire_time) == (None, None)
    assert tokens.scopes == ("payments:write",)
    assert verified.client_id == account.client_id
    assert caught.value.reason == AuthErrorReason.INVALID_CREDENTIALS


async def test_failures_arrive_as_mainmast_errors_with_their_reasons(
    sqlite_url: str, serve: Any
) -> None:
    async with (
        serve(sqlite_url) as running,
        AuthClient(config=running.client_config()) as auth,
    ):
        await running.seed("tenants/acme", "alice", "bob")
        with pytest.raises(UnauthenticatedError) as wrong_password:
            await auth.login("tenants/acme", "alice", "not the password")
        alice = await auth.login("tenants/acme", "alice", PASSWORD)
        bob = await auth.login("tenants/acme", "bob", PASSWORD)
        with pytest.raises(UnauthenticatedError) as tampered:
            await auth.verify(alice.access_token[:-4] + "AAAA")
        with pytest.raises(PermissionDeniedError) as denied:
            await auth.revoke(jti=bob.token_id, bearer_token=alice.access_token)
        with pytest.raises(UnauthenticatedError) as garbage_bearer:
            await auth.introspect(alice.access_token, bearer_token="garbage")
        with pytest.raises(UnauthenticatedError) as no_bearer:
            await auth.introspect(alice.access_token, bearer_token="")
        with pytest.raises(ValidationError) as two_targets:
            await auth.revoke(token="x", jti="y", bearer_token=alice.access_token)

    assert wrong_password.value.reason == AuthErrorReason.INVALID_CREDENTIALS
    assert tampered.value.reason == AuthErrorReason.TOKEN_SIGNATURE_INVALID
    assert denied.value.reason == AuthErrorReason.PERMISSION_MISSING
    assert garbage_bearer.value.reason == AuthErrorReason.TOKEN_MALFORMED
    assert no_bearer.value.reason == AuthErrorReason.CREDENTIALS_MISSING
    assert two_targets.value.reason == AuthErrorReason.REVOKE_TARGET_MISSING


async def test_connecting_to_no_service_fails_and_leaves_nothing_open() -> None:
    # Port 1 on loopback: nothing listens there, and no test server can be given it.
    auth = AuthClient(config=AuthClientConfig(target="127.0.0.1:1", connect_timeout_seconds=0.5))
    with pytest.raises((UnavailableError, DeadlineExceededError)):
        await auth.connect()

    assert auth.keys is None
    with pytest.raises(RuntimeError, match="connect"):
        await auth.verify("a.b.c")


async def test_calls_before_connect_say_so() -> None:
    auth = AuthClient("127.0.0.1:1")

    with pytest.raises(RuntimeError, match="connect"):
        await auth.login("tenants/acme", "alice", PASSWORD)
    assert auth.config.target == "127.0.0.1:1"


def test_a_config_with_impossible_values_is_refused() -> None:
    with pytest.raises(ValueError, match="call_timeout_seconds"):
        AuthClientConfig(call_timeout_seconds=0)
    with pytest.raises(ValueError, match="revocation_check"):
        AuthClientConfig(revocation_check="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="issuer"):
        AuthClientConfig(issuer="")
