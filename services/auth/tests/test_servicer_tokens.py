"""The token endpoints over a real server: AuthService on 127.0.0.1, SQLite and PostgreSQL.

Each test gets a database of its own. On PostgreSQL that is a fresh database on the run's
server rather than the run's shared one: the signing keys are one per database (a
rotation in one test would change every other test's key), and a fresh install is only
fresh in an empty database.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import structlog.testing
from sqlalchemy import select

from mainmast.auth import KeySet, TokenVerifier, VerificationKey, VerificationPolicy
from mainmast.auth.v1 import auth_service_pb2
from mainmast.db import DatabasePool
from mainmast.errors import (
    FailedPreconditionError,
    MainmastError,
    PermissionDeniedError,
    UnauthenticatedError,
    ValidationError,
    translate_rpc_errors,
)
from mainmast_auth._key_encryption import PrivateKeyCipher, generate_encryption_key
from mainmast_auth._keys import SigningAlgorithm, jwk_thumbprint
from mainmast_auth._models import SigningKeyRow
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._store_directory import (
    create_service_account,
    disable_user,
    find_user,
)
from mainmast_auth.settings import AuthSettings
from mainmast_auth.testing import eventually

ISSUER = "https://auth.test"
AUDIENCE = "mainmast-test"
PASSWORD = "correct horse battery staple"
CLIENT_SECRET = "s3cr3t-client-value-for-tests-only"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def database(fresh_database_url: str) -> str:
    """The URL of an empty database of this test's own, on each backend."""
    return fresh_database_url


@pytest.fixture
def serve(serve_auth: Any) -> Any:
    """`async with serve(database, **settings) as server:` an auth service with this file's
    issuer and audience."""
    return functools.partial(serve_auth, issuer=ISSUER, audience=AUDIENCE)


async def _rotate(
    server: Any, as_token: str, algorithm: str = ""
) -> auth_service_pb2.RotateSigningKeyResponse:
    """RotateSigningKey (to `algorithm`, or the configured one), as the holder of `as_token`."""
    request = auth_service_pb2.RotateSigningKeyRequest(algorithm=algorithm)
    return await server.call(server.stub.RotateSigningKey, request, as_token)


async def test_a_fresh_install_generates_a_sealed_key_and_a_restart_reuses_it(
    database: str, tmp_path: Path, serve: Any
) -> None:
    async with serve(database) as server:
        first = await server.stub.GetJwks(auth_service_pb2.GetJwksRequest())
    key_file = tmp_path / "sealing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [key.algorithm for key in first.keys] == ["EdDSA"]
    assert first.max_age.seconds == 300

    pool = DatabasePool(database, pool_size=1, max_overflow=0)
    try:
        async with pool.session() as session:
            rows = list((await session.execute(select(SigningKeyRow))).scalars())
    finally:
        await pool.close()
    assert [row.key_id for row in rows] == [first.keys[0].key_id]
    # Stored sealed: it opens only with the generated sealing key, and to the published key.
    cipher = PrivateKeyCipher(key_file.read_text().strip())
    opened = cipher.open(
        rows[0].sealed_private_key,
        key_id=rows[0].key_id,
        algorithm=SigningAlgorithm.EDDSA,
        create_time=rows[0].create_time,
    )
    assert opened.public_jwk()["x"] == first.keys[0].x

    async with serve(database) as server:
        again = await server.stub.GetJwks(auth_service_pb2.GetJwksRequest())
    assert [key.key_id for key in again.keys] == [first.keys[0].key_id]


async def test_a_configured_encryption_key_and_algorithm_are_used_and_no_file_is_written(
    sqlite_url: str, tmp_path: Path, serve: Any
) -> None:
    async with serve(
        sqlite_url, signing_key_encryption_key=generate_encryption_key(), signing_algorithm="ES256"
    ) as server:
        jwks = await server.stub.GetJwks(auth_service_pb2.GetJwksRequest())
    assert [(key.algorithm, key.curve) for key in jwks.keys] == [("ES256", "P-256")]
    assert not (tmp_path / "sealing.key").exists()


async def test_with_an_hs256_secret_tokens_are_signed_with_it_and_nothing_is_published(
    database: str, serve: Any
) -> None:
    secret = "an HS256 secret of well over thirty-two bytes"
    async with serve(database, signing_algorithm="HS256", signing_hmac_secret=secret) as server:
        await server.seed("tenants/acme", "alice", "root")
        await server.make_platform_admin("tenants/acme/users/root")
        alice = await server.login("tenants/acme", "alice")
        root = await server.login("tenants/acme", "root")
        jwks = await server.stub.GetJwks(auth_service_pb2.GetJwksRequest())
        # The service verifies its own HS256 tokens: on every authenticated call, and here.
        active = await server.introspect(alice.access_token, as_token=root.access_token)
        with pytest.raises(FailedPreconditionError) as rotation:
            await _rotate(server, root.access_token)
    pool = DatabasePool(database, pool_size=1, max_overflow=0)
    try:
        async with pool.session() as session:
            stored_keys = list((await session.execute(select(SigningKeyRow))).scalars())
    finally:
        await pool.close()

    header = jwt.get_unverified_header(alice.access_token)
    assert header["alg"] == "HS256"
    assert list(jwks.keys) == []
    assert json.loads(jwks.json_document) == {"keys": []}
    assert active
    assert rotation.value.metadata == {"algorithm": "HS256"}
    assert stored_keys == []  # the secret is never stored, and no other key is made
    # An application given the secret verifies locally; the key id is the RFC 7638
    # thumbprint of the secret's JWK, as the token's header says.
    thumbprint = jwk_thumbprint(
        {"kty": "oct", "k": base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()}
    )
    assert header["kid"] == thumbprint
    local = TokenVerifier(
        KeySet([VerificationKey.from_hmac_secret(thumbprint, secret.encode())]),
        VerificationPolicy(ISSUER, AUDIENCE, algorithms=frozenset({"HS256"})),
    )
    assert local.verify(alice.access_token).subject == "tenants/acme/users/alice"


async def test_an_hs256_service_refuses_tokens_of_its_earlier_asymmetric_key(
    sqlite_url: str, serve: Any
) -> None:
    async with serve(sqlite_url) as eddsa:
        await eddsa.seed("tenants/acme", "alice")
        before = await eddsa.login("tenants/acme", "alice")
    hs256 = {
        "signing_algorithm": "HS256",
        "signing_hmac_secret": "an HS256 secret of well over thirty-two bytes",
    }
    async with serve(sqlite_url, **hs256) as server:
        after = await server.login("tenants/acme", "alice")
        with pytest.raises(UnauthenticatedError) as refused:
            await server.introspect(after.access_token, as_token=before.access_token)
        # Nor does it accept an asymmetric algorithm at all: its allow-list is HS256.
        assert await server.introspect(after.access_token, as_token=after.access_token)
    assert refused.value.reason in {"TOKEN_KEY_UNKNOWN", "TOKEN_ALGORITHM_NOT_ALLOWED"}


async def test_a_password_login_gives_a_token_that_verifies_locally_against_the_jwks(
    database: str, serve: Any
) -> None:
    async with serve(database) as server:
        await server.seed("tenants/acme", "alice", role="admin")
        issued = await server.login("tenants/acme", "alice")
        verified = (await server.jwks_verifier()).verify(issued.access_token)

    assert issued.token_type == "Bearer"
    assert issued.refresh_token.startswith("mmrt_")
    assert (verified.subject, verified.tenant) == ("tenants/acme/users/alice", "tenants/acme")
    assert verified.roles == ("tenants/acme/roles/admin",)
    assert verified.token_id == issued.token_id
    assert verified.client_id is None


async def test_a_wrong_password_and_an_unknown_user_fail_with_the_same_error(
    database: str, serve: Any
) -> None:
    failures: list[MainmastError] = []
    async with serve(database) as server:
        await server.seed("tenants/acme", "alice")
        for tenant, username, password in [
            ("tenants/acme", "alice", "not the password at all"),
            ("tenants/acme", "mallory", PASSWORD),
            ("tenants/nowhere", "alice", PASSWORD),
            ("tenants/acme", "Not A Username!", PASSWORD),
        ]:
            with pytest.raises(UnauthenticatedError) as caught:
                await server.login(tenant, username, password)
            failures.append(caught.value)
    shapes = {(type(e), e.message, e.reason, e.domain, tuple(e.metadata.items())) for e in failures}
    assert len(shapes) == 1
    assert failures[0].reason == "INVALID_CREDENTIALS"


async def test_a_disabled_user_cannot_log_in_and_its_tokens_stop_being_active(
    sqlite_url: str, serve: Any
) -> None:
    async with serve(sqlite_url) as server:
        await server.seed("tenants/acme", "alice", "bob")
        alice = await server.login("tenants/acme", "alice")
        bob = await server.login("tenants/acme", "bob")
        # Disabled straight in the store, as another writer would: the login reads the
        # store, verification this replica's access state, which polls it up.
        async with server.service.database.session() as session:
            await disable_user(session, "tenants/acme/users/alice", now=NOW)
        with pytest.raises(UnauthenticatedError) as caught:
            await server.login("tenants/acme", "alice")
        assert caught.value.reason == "USER_DISABLED"

        async def alice_inactive() -> bool:
            return not await server.introspect(alice.access_token, as_token=bob.access_token)

        assert await eventually(alice_inactive)
        with pytest.raises(UnauthenticatedError):
            await server.refresh(alice.refresh_token)


async def test_client_credentials_give_a_service_account_a_token_and_no_refresh_token(
    database: str, serve: Any
) -> None:
    async with serve(database) as server:
        await server.seed("tenants/acme")
        async with server.service.database.session() as session:
            account = await create_service_account(
                session,
                "tenants/acme",
                "payments-api",
                secret_hash=PasswordHasher().hash(CLIENT_SECRET),
                now=NOW,
            )
            client_id = account.client_id

        def grant(secret: str) -> auth_service_pb2.IssueTokenRequest:
            return auth_service_pb2.IssueTokenRequest(
                client_credentials=auth_service_pb2.IssueTokenRequest.ClientCredentialsGrant(
                    client_id=client_id, client_secret=secret
                ),
                scopes=["payments:write"],
            )

        with translate_rpc_errors():
            issued = await server.stub.IssueToken(grant(CLIENT_SECRET))
        verified = (await server.jwks_verifier()).verify(issued.access_token)
        with pytest.raises(UnauthenticatedError) as caught, translate_rpc_errors():
            await server.stub.IssueToken(grant("a wrong secret"))

    assert caught.value.reason == "INVALID_CREDENTIALS"
    assert issued.refresh_token == ""
    assert not issued.HasField("refresh_token_expire_time")
    assert verified.subject == "tenants/acme/serviceAccounts/payments-api"
    assert verified.client_id == client_id
    assert verified.scopes == ("payments:write",)


async def test_a_refresh_rotates_the_token_and_a_reused_one_revokes_its_family(
    database: str, serve: Any
) -> None:
    async with serve(database) as server:
        await server.seed("tenants/acme", "alice")
        login = await server.login("tenants/acme", "alice")
        rotated = await server.refresh(login.refresh_token)
        verified = (await server.jwks_verifier()).verify(rotated.access_token)

        with pytest.raises(UnauthenticatedError) as reused:
            await server.refresh(login.refresh_token)
        with pytest.raises(UnauthenticatedError) as after_reuse:
            await server.refresh(rotated.refresh_token)
        # Another login is a family of its own, untouched.
        other = await server.login("tenants/acme", "alice")
        await server.refresh(other.refresh_token)

    assert rotated.refresh_token not in {"", login.refresh_token}
    assert verified.subject == "tenants/acme/users/alice"
    assert reused.value.reason == "REFRESH_TOKEN_REUSED"
    assert after_reuse.value.reason == "REFRESH_TOKEN_INVALID"


async def test_revoking_by_token_id_needs_the_permission_and_makes_the_token_inactive(
    database: str, serve: Any
) -> None:
    async with serve(database) as server:
        await server.seed("tenants/acme", "alice")
        await server.seed("tenants/beta", "bob", role="admin")
        await server.seed("tenants/acme", "carol", role="admin")
        alice = await server.login("tenants/acme", "alice")
        bob = await server.login("tenants/beta", "bob")
        carol = await server.login("tenants/acme", "carol")
        assert await server.introspect(alice.access_token, as_token=carol.access_token)

        with pytest.raises(PermissionDeniedError) as denied:
            await server.revoke(alice.access_token, token_id=carol.token_id)
        await server.revoke(carol.access_token, token_id=alice.token_id)

        assert not await server.introspect(alice.access_token, as_token=carol.access_token)
        assert await server.introspect(carol.access_token, as_token=bob.access_token)
        with pytest.raises(UnauthenticatedError) as rejected:
            await server.introspect(carol.access_token, as_token=alice.access_token)
    assert denied.value.reason == "PERMISSION_MISSING"
    assert rejected.value.reason == "TOKEN_REVOKED"


async def test_revoking_a_subject_revokes_its_access_and_refresh_tokens(
    database: str, serve: Any
) -> None:
    async with serve(database) as server:
        await server.seed("tenants/acme", "alice", "dave")
        await server.seed("tenants/beta", "bob", role="admin")
        alice = await server.login("tenants/acme", "alice")
        dave = await server.login("tenants/acme", "dave")
        bob = await server.login("tenants/beta", "bob")

        # An admin of another tenant may not; a principal may always revoke its own tokens.
        with pytest.raises(PermissionDeniedError):
            await server.revoke(bob.access_token, subject="tenants/acme/users/alice")
        await server.revoke(alice.access_token, subject="tenants/acme/users/alice")

        assert not await server.introspect(alice.access_token, as_token=dave.access_token)
        with pytest.raises(UnauthenticatedError) as refused:
            await server.refresh(alice.refresh_token)
        assert await server.introspect(dave.access_token, as_token=bob.access_token)
    assert refused.value.reason == "REFRESH_TOKEN_INVALID"


async def test_revoking_a_token_by_value_works_for_access_and_refresh_tokens(
    sqlite_url: str, serve: Any
) -> None:
    async with serve(sqlite_url) as server:
        await server.seed("tenants/acme", "alice", "dave")
        alice = await server.login("tenants/acme", "alice")
        dave = await server.login("tenants/acme", "dave")
        await server.revoke(dave.access_token, token=alice.access_token)
        await server.revoke(dave.access_token, token=alice.refresh_token)
        # RFC 7009: an unknown or invalid token is no error.
        await server.revoke(dave.access_token, token="not-a-token")
        assert not await server.introspect(alice.access_token, as_token=dave.access_token)
        with pytest.raises(UnauthenticatedError) as refused:
            await server.refresh(alice.refresh_token)
    assert refused.value.reason == "REFRESH_TOKEN_INVALID"


async def test_introspection_answers_inactive_for_anything_that_does_not_verify(
    sqlite_url: str, serve: Any
) -> None:
    async with serve(sqlite_url) as server:
        await server.seed("tenants/acme", "alice")
        alice = await server.login("tenants/acme", "alice")
        response = await server.call(
            server.stub.IntrospectToken,
            auth_service_pb2.IntrospectTokenRequest(token=alice.access_token),
            alice.access_token,
        )
        refresh = await server.call(
            server.stub.IntrospectToken,
            auth_service_pb2.IntrospectTokenRequest(token=alice.refresh_token),
            alice.access_token,
        )
        await server.refresh(alice.refresh_token)
        spent = alice.refresh_token
        for token in ["", "garbage", alice.access_token[:-4] + "AAAA", spent, "mmrt_unknown"]:
            assert not await server.introspect(token, as_token=alice.access_token)
    assert response.active
    assert (response.subject, response.tenant, response.username) == (
        "tenants/acme/users/alice",
        "tenants/acme",
        "alice",
    )
    assert (response.issuer, list(response.audiences)) == (ISSUER, [AUDIENCE])
    assert response.token_id == alice.token_id
    assert response.token_type == "access_token"
    assert (refresh.active, refresh.token_type, refresh.subject) == (
        True,
        "refresh_token",
        "tenants/acme/users/alice",
    )


async def test_calls_other_than_jwks_and_issue_token_need_a_bearer_token(
    sqlite_url: str, serve: Any
) -> None:
    async with serve(sqlite_url) as server:
        with pytest.raises(UnauthenticatedError) as missing, translate_rpc_errors():
            await server.stub.IntrospectToken(auth_service_pb2.IntrospectTokenRequest(token="x"))
        with pytest.raises(UnauthenticatedError) as bad, translate_rpc_errors():
            await server.stub.RotateSigningKey(
                auth_service_pb2.RotateSigningKeyRequest(),
                metadata=(("authorization", "Bearer not.a.token"),),
            )
        with pytest.raises(ValidationError) as no_grant, translate_rpc_errors():
            await server.stub.IssueToken(auth_service_pb2.IssueTokenRequest())
    assert missing.value.reason == "CREDENTIALS_MISSING"
    assert bad.value.reason == "TOKEN_MALFORMED"
    assert no_grant.value.reason == "GRANT_MISSING"


async def test_rotation_publishes_a_new_key_and_keeps_old_tokens_verifiable(
    database: str, serve: Any
) -> None:
    async with serve(database) as server:
        await server.seed("tenants/acme", "alice", "root")
        await server.make_platform_admin("tenants/acme/users/root")
        alice = await server.login("tenants/acme", "alice")
        root = await server.login("tenants/acme", "root")

        with pytest.raises(PermissionDeniedError):
            await _rotate(server, alice.access_token)
        rotation = await _rotate(server, root.access_token, "ES256")
        verifier = await server.jwks_verifier()
        old_token = verifier.verify(alice.access_token)
        after = await server.login("tenants/acme", "alice")
        new_token = verifier.verify(after.access_token)
        still_active = await server.introspect(alice.access_token, as_token=after.access_token)
        with pytest.raises(ValidationError) as unsupported:
            await _rotate(server, root.access_token, "HS256")

    active, retired = rotation.signing_key, rotation.retired_signing_key
    assert (active.algorithm, retired.algorithm) == ("ES256", "EdDSA")
    assert active.state == active.STATE_ACTIVE
    assert retired.state == retired.STATE_RETIRED
    assert retired.expire_time.ToDatetime() > retired.retire_time.ToDatetime()
    assert list(verifier.keys) == [active.key_id, retired.key_id]
    assert (old_token.key_id, new_token.key_id) == (retired.key_id, active.key_id)
    assert still_active
    assert unsupported.value.reason == "ALGORITHM_NOT_SUPPORTED"


async def test_replicas_pick_up_a_key_another_replica_rotated_in(database: str, serve: Any) -> None:
    async with serve(database) as first, serve(database) as second, serve(database) as third:
        await first.seed("tenants/acme", "alice", "root")
        await first.make_platform_admin("tenants/acme/users/root")
        root = await first.login("tenants/acme", "root")
        rotation = await _rotate(first, root.access_token)
        # The other replicas still hold the old ring. A grant on one signs with the new
        # active key; a token with the new kid makes the other reload.
        via_second = await second.login("tenants/acme", "alice")
        via_first = await first.login("tenants/acme", "alice")
        verifier = await first.jwks_verifier()
        assert await third.introspect(via_first.access_token, as_token=root.access_token)
        jwks = await third.stub.GetJwks(auth_service_pb2.GetJwksRequest())
    assert verifier.verify(via_second.access_token).key_id == rotation.signing_key.key_id
    assert [key.key_id for key in jwks.keys] == [
        rotation.signing_key.key_id,
        rotation.retired_signing_key.key_id,
    ]


def test_a_generated_encryption_key_lives_in_the_data_folder_unless_a_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAINMAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MAINMAST_AUTH_SIGNING_KEY_ENCRYPTION_KEY_FILE", raising=False)
    assert AuthSettings().encryption_key_file() == tmp_path / "auth-signing-key-encryption.key"
    monkeypatch.setenv("MAINMAST_AUTH_SIGNING_KEY_ENCRYPTION_KEY_FILE", str(tmp_path / "k"))
    assert AuthSettings().encryption_key_file() == tmp_path / "k"


async def test_the_logs_of_a_full_flow_hold_no_password_hash_token_or_client_secret(
    sqlite_url: str, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Every structlog event (any level) and every standard-library record at the
    # service's default level, INFO. (At DEBUG, aiosqlite logs SQL parameters, hashes
    # among them: a dependency's debug output, reported rather than hidden here.)
    async with serve(sqlite_url) as server:
        await server.seed("tenants/acme", "alice", role="admin")
        async with server.service.database.session() as session:
            account = await create_service_account(
                session,
                "tenants/acme",
                "payments-api",
                secret_hash=PasswordHasher().hash(CLIENT_SECRET),
                now=NOW,
            )
            user = await find_user(session, "tenants/acme/users/alice")
            assert user is not None
            assert user.password_hash is not None
            hashes = [account.secret_hash, user.password_hash]
            client_id = account.client_id
        caplog.set_level(logging.INFO)
        with structlog.testing.capture_logs() as events:
            with pytest.raises(UnauthenticatedError):
                await server.login("tenants/acme", "alice", "a wrong password entirely")
            login = await server.login("tenants/acme", "alice")
            rotated = await server.refresh(login.refresh_token)
            with pytest.raises(UnauthenticatedError):
                await server.refresh(login.refresh_token)
            with translate_rpc_errors():
                service_token = await server.stub.IssueToken(
                    auth_service_pb2.IssueTokenRequest(
                        client_credentials=auth_service_pb2.IssueTokenRequest.ClientCredentialsGrant(
                            client_id=client_id, client_secret=CLIENT_SECRET
                        )
                    )
                )
            again = await server.login("tenants/acme", "alice")
            await server.introspect(again.access_token, as_token=again.access_token)
            await server.revoke(again.access_token, token=again.refresh_token)
            await server.revoke(again.access_token, token_id=login.token_id)
            await server.revoke(again.access_token, subject="tenants/acme/users/alice")

    names = [event["event"] for event in events]
    for expected in [
        "auth.login_failed",
        "auth.token_issued",
        "auth.token_refreshed",
        "auth.refresh_token_reuse_detected",
        "auth.token_revoked",
    ]:
        assert expected in names
    for event in events:
        if event["event"] in {"auth.token_issued", "auth.token_refreshed", "auth.login_failed"}:
            assert event["tenant"] == "tenants/acme"
            assert event["subject"].startswith("tenants/acme/")
    everything = repr(events) + "\n".join(
        f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records
    )
    secrets = [
        PASSWORD,
        "a wrong password entirely",
        CLIENT_SECRET,
        *hashes,
        *(hash_.split("$")[-1] for hash_ in hashes),
        login.access_token,
        login.refresh_token,
        rotated.access_token,
        rotated.refresh_token,
        service_token.access_token,
        again.access_token,
        again.refresh_token,
    ]
    for secret in secrets:
        assert secret not in everything
    # Each token's signature alone is a credential fragment too.
    for token in [login.access_token, rotated.access_token, again.access_token]:
        assert token.rsplit(".", 1)[1] not in everything
