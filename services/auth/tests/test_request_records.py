"""Idempotent mutations over a real server: a `request_id` retry returns the first outcome,
on SQLite and PostgreSQL.

A platform admin is bootstrapped in `tenants/platform`; everything else goes through the
RPCs with real tokens.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import select, update

from mainmast.auth.v1 import auth_service_pb2 as pb
from mainmast.auth.v1 import resources_pb2
from mainmast.errors import AlreadyExistsError, FailedPreconditionError, ValidationError
from mainmast_auth._models import RequestRecordRow
from mainmast_auth._request_records import RECORD_LIFETIME, RequestKey

PASSWORD = "correct horse battery staple"

Server = Any  # the conftest's `Served`, which a test module cannot import


def _request_id() -> str:
    return str(uuid.uuid4())


async def _count(server: Server) -> int:
    async with server.service.database.session() as session:
        return len(list((await session.execute(select(RequestRecordRow))).scalars()))


async def test_a_retried_create_tenant_answers_the_first_tenant_and_creates_nothing(
    server: Server,
) -> None:
    request_id = _request_id()
    request = pb.CreateTenantRequest(
        tenant_id="acme", tenant=resources_pb2.Tenant(display_name="Acme"), request_id=request_id
    )
    with structlog.testing.capture_logs() as events:
        first = await server.call(server.stub.CreateTenant, request)
        again = await server.call(server.stub.CreateTenant, request)
    with pytest.raises(AlreadyExistsError):
        await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme"))

    assert again == first
    assert [event["event"] for event in events].count("auth.tenant_created") == 1


async def test_a_retried_create_user_answers_the_first_user(server: Server) -> None:
    await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme"))
    request = pb.CreateUserRequest(
        parent="tenants/acme",
        user_id="alice",
        user=resources_pb2.User(email="alice@example.com"),
        password=PASSWORD,
        request_id=_request_id(),
    )
    first = await server.call(server.stub.CreateUser, request)
    # The password is no part of the comparison (its fast hash is never stored): a retry
    # that changed only the password is the same request, and changes nothing.
    request.password = "another long enough passphrase"
    again = await server.call(server.stub.CreateUser, request)

    assert again == first
    assert await server.access_token("tenants/acme", "alice")


async def test_a_retried_create_service_account_answers_the_account_without_its_secret(
    server: Server,
) -> None:
    await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme"))
    request = pb.CreateServiceAccountRequest(
        parent="tenants/acme", service_account_id="payments", request_id=_request_id()
    )
    first = await server.call(server.stub.CreateServiceAccount, request)
    again = await server.call(server.stub.CreateServiceAccount, request)

    assert again.service_account == first.service_account
    assert first.client_secret
    assert again.client_secret == ""
    records = await _count(server)
    async with server.service.database.session() as session:
        outcomes = list((await session.execute(select(RequestRecordRow.outcome))).scalars())
    assert first.client_secret not in " ".join(outcomes)
    assert records == 1  # the tenant's creation had no request_id


async def test_a_retried_password_change_does_not_revoke_the_refresh_tokens_issued_since(
    server: Server,
) -> None:
    await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme"))
    await server.call(
        server.stub.CreateUser,
        pb.CreateUserRequest(parent="tenants/acme", user_id="alice", password=PASSWORD),
    )
    new_password = "a brand new long passphrase"
    request = pb.SetUserPasswordRequest(
        name="tenants/acme/users/alice", password=new_password, request_id=_request_id()
    )
    first = await server.call(server.stub.SetUserPassword, request)
    login = await server.stub.IssueToken(
        pb.IssueTokenRequest(
            password=pb.IssueTokenRequest.PasswordGrant(
                tenant="tenants/acme", username="alice", password=new_password
            )
        )
    )
    again = await server.call(server.stub.SetUserPassword, request)
    refreshed = await server.stub.IssueToken(
        pb.IssueTokenRequest(
            refresh_token=pb.IssueTokenRequest.RefreshTokenGrant(refresh_token=login.refresh_token)
        )
    )

    assert again == first
    assert refreshed.access_token


async def test_a_retried_rotation_answers_the_first_rotations_keys(server: Server) -> None:
    request = pb.RotateSigningKeyRequest(request_id=_request_id())
    first = await server.call(server.stub.RotateSigningKey, request)
    again = await server.call(server.stub.RotateSigningKey, request)
    jwks = await server.stub.GetJwks(pb.GetJwksRequest())

    assert again.signing_key.key_id == first.signing_key.key_id
    assert again.retired_signing_key.key_id == first.retired_signing_key.key_id
    assert len(jwks.keys) == 2  # rotated once


async def test_a_retried_subject_revocation_answers_the_first_time_and_spares_newer_tokens(
    server: Server,
) -> None:
    await server.call(server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme"))
    await server.call(
        server.stub.CreateUser,
        pb.CreateUserRequest(parent="tenants/acme", user_id="alice", password=PASSWORD),
    )
    request = pb.RevokeTokensRequest(subject="tenants/acme/users/alice", request_id=_request_id())
    first = await server.call(server.stub.RevokeTokens, request)
    # iat has whole seconds: a token of the revocation's second would count as before it.
    await asyncio.sleep(1.0)
    newer = await server.access_token("tenants/acme", "alice")
    again = await server.call(server.stub.RevokeTokens, request)
    introspected = await server.call(
        server.stub.IntrospectToken, pb.IntrospectTokenRequest(token=newer)
    )

    assert again.revoke_time == first.revoke_time
    assert introspected.active


async def test_a_request_id_sent_again_with_another_request_is_refused(server: Server) -> None:
    request_id = _request_id()
    await server.call(
        server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme", request_id=request_id)
    )
    with pytest.raises(FailedPreconditionError) as other_fields:
        await server.call(
            server.stub.CreateTenant,
            pb.CreateTenantRequest(tenant_id="globex", request_id=request_id),
        )
    with pytest.raises(FailedPreconditionError) as other_method:
        await server.call(
            server.stub.RotateSigningKey, pb.RotateSigningKeyRequest(request_id=request_id)
        )

    assert other_fields.value.metadata == {"field": "request_id", "request_id": request_id}
    assert other_method.value.metadata["field"] == "request_id"


async def test_another_callers_request_id_is_another_request(server: Server) -> None:
    request_id = _request_id()
    await server.call(
        server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme", request_id=request_id)
    )
    await server.call(
        server.stub.CreateUser,
        pb.CreateUserRequest(parent="tenants/acme", user_id="alice", password=PASSWORD),
    )
    await server.call(
        server.stub.AssignRole,
        pb.AssignRoleRequest(principal="tenants/acme/users/alice", role="tenants/acme/roles/admin"),
    )
    alice = await server.access_token("tenants/acme", "alice")
    created = await server.call(
        server.stub.CreateUser,
        pb.CreateUserRequest(
            parent="tenants/acme", user_id="bob", password=PASSWORD, request_id=request_id
        ),
        alice,
    )
    assert created.user.name == "tenants/acme/users/bob"


@pytest.mark.parametrize("request_id", ["not-a-uuid", "1234", "x" * 40])
async def test_a_request_id_that_is_not_a_uuid_is_invalid(server: Server, request_id: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await server.call(
            server.stub.CreateTenant,
            pb.CreateTenantRequest(tenant_id="acme", request_id=request_id),
        )
    assert caught.value.metadata == {"field": "request_id"}


async def test_concurrent_calls_with_one_request_id_create_once_and_answer_alike(
    server: Server,
) -> None:
    request = pb.CreateTenantRequest(tenant_id="acme", request_id=_request_id())
    answers = await asyncio.gather(
        *(server.call(server.stub.CreateTenant, request) for _ in range(4))
    )
    assert all(answer == answers[0] for answer in answers)
    assert await _count(server) == 1


async def test_a_request_id_is_forgotten_after_a_day(server: Server) -> None:
    request_id = _request_id()
    await server.call(
        server.stub.CreateTenant, pb.CreateTenantRequest(tenant_id="acme", request_id=request_id)
    )
    # A day passes (the record's expiry moved back rather than the clock forward).
    async with server.service.database.session() as session:
        await session.execute(
            update(RequestRecordRow).values(expire_time=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(AlreadyExistsError):
        await server.call(
            server.stub.CreateTenant,
            pb.CreateTenantRequest(tenant_id="acme", request_id=request_id),
        )
    created = await server.call(
        server.stub.CreateTenant,
        pb.CreateTenantRequest(tenant_id="globex", request_id=request_id),
    )
    assert created.tenant.name == "tenants/globex"
    assert await _count(server) == 1  # the expired record made room


def test_a_key_fingerprints_the_method_and_fields_and_canonicalises_the_id() -> None:
    request_id = uuid.uuid4()
    key = RequestKey.of("caller", str(request_id).upper(), "CreateTenant", tenant_id="acme")
    same = RequestKey.of("caller", request_id.hex, "CreateTenant", tenant_id="acme")
    other = RequestKey.of("caller", str(request_id), "CreateTenant", tenant_id="globex")
    assert key is not None
    assert same is not None
    assert other is not None
    assert key == same
    assert key.request_id == str(request_id)
    assert key.fingerprint != other.fingerprint
    assert RequestKey.of("caller", "", "CreateTenant", tenant_id="acme") is None
    assert timedelta(hours=24) == RECORD_LIFETIME
