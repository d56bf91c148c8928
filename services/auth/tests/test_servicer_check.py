"""Check and BatchCheck over a real server: AuthService on 127.0.0.1, SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mainmast.errors import PermissionDeniedError, ValidationError
from mainmast_auth._admin_service import bootstrap_platform_admin
from mainmast_auth._authorizer import default_tenant_lines
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._policy_model import PolicyLine, Section
from mainmast_auth._store_directory import create_user

ROOT_PASSWORD = "the platform's own long passphrase"
PASSWORD = "correct horse battery staple"

Server = Any  # the conftest's `Served`, which a test module cannot import
_NAMESPACES = itertools.count()
"""Fresh names for the examples that each make new tenants on one service."""


@pytest.fixture
async def server(server: Server) -> Server:
    """The conftest's server, with its platform admin `tenants/platform/users/root`, and a
    tenant `tenants/acme` whose admin is alice and whose member is bob."""
    hasher = PasswordHasher()
    await bootstrap_platform_admin(
        server.service.database,
        hasher,
        tenant="tenants/acme",
        username="carol",
        password=ROOT_PASSWORD,
    )
    async with server.service.database.session() as session:
        for user in ("alice", "bob"):
            await create_user(
                session,
                "tenants/acme",
                user,
                password_hash=hasher.hash(PASSWORD),
                now=datetime.now(UTC),
            )
    await server.add_lines(
        [
            PolicyLine(
                Section.ASSIGNMENT,
                ("tenants/acme/users/alice", "tenants/acme/roles/admin", "tenants/acme"),
            ),
            PolicyLine(
                Section.ASSIGNMENT,
                ("tenants/acme/users/bob", "tenants/acme/roles/member", "tenants/acme"),
            ),
        ]
    )
    return server


async def test_check_answers_from_the_policy_and_a_denial_is_no_error(server: Server) -> None:
    alice = await server.access_token("tenants/acme", "alice")
    assert await server.check("tenants/acme/users/alice", "tenants/acme", "users:create", alice)
    assert await server.check("tenants/acme/users/bob", "tenants/acme", "invoices:read", alice)
    assert not await server.check("tenants/acme/users/bob", "tenants/acme", "users:create", alice)
    # Principals need not exist: an unknown one holds nothing.
    assert not await server.check("tenants/acme/users/ghost", "tenants/acme", "a:read", alice)


async def test_asking_about_another_tenant_is_permission_denied_unless_platform_admin(
    server: Server,
) -> None:
    alice = await server.access_token("tenants/acme", "alice")
    questions = [
        ("tenants/platform/users/root", "tenants/platform", "users:read"),
        ("tenants/acme/users/bob", "tenants/platform", "users:read"),
        ("tenants/globex/users/nobody", "tenants/globex", "users:read"),
    ]
    for question in questions:
        with pytest.raises(PermissionDeniedError):
            await server.check(*question, token=alice)
    # One foreign question refuses the whole batch.
    with pytest.raises(PermissionDeniedError):
        await server.batch_check(
            [("tenants/acme/users/bob", "tenants/acme", "users:read"), questions[0]], alice
        )
    # The platform admin may ask; the answer keeps tenant isolation all the same.
    assert await server.batch_check(questions) == [True, False, False]
    assert await server.check("tenants/platform/users/root", "tenants/acme", "users:read")
    # carol of acme holds the platform role: she may act in any tenant.
    assert await server.check("tenants/acme/users/carol", "tenants/globex", "users:delete")


async def test_batch_check_answers_in_request_order_and_validates_every_field(
    server: Server,
) -> None:
    checks = [
        ("tenants/acme/users/bob", "tenants/acme", "invoices:read"),
        ("tenants/acme/users/bob", "tenants/acme", "invoices:write"),
        ("tenants/acme/users/alice", "tenants/acme", "roles:assign"),
        ("tenants/acme/users/alice", "tenants/acme", "invoices:write"),
    ]
    assert await server.batch_check(checks) == [True, False, True, False]
    assert await server.batch_check(checks[::-1]) == [False, True, False, True]
    assert await server.batch_check([]) == []
    with pytest.raises(ValidationError) as too_many:
        await server.batch_check([checks[0]] * 1001)
    assert "1000" in too_many.value.message
    for bad in (
        ("alice", "tenants/acme", "a:read"),
        ("tenants/acme/users/alice", "acme", "a:read"),
        ("tenants/acme/users/alice", "tenants/acme", "read"),
    ):
        with pytest.raises(ValidationError):
            await server.check(*bad)
        with pytest.raises(ValidationError):
            await server.batch_check([checks[0], bad])


_TENANTS = st.sampled_from(["a1", "b2", "c3"])
_USERS = st.sampled_from(["u1", "u2", "u3"])
_ROLES = st.sampled_from(["r1", "r2", "owner"])
_SIDES = st.sampled_from(["*", "x", "y"])


_Grant = tuple[str, str, str, str, str]
_Assignment = tuple[str, str, str, str]
_Scenario = tuple[list[_Grant], list[_Assignment]]


@st.composite
def _scenarios(draw: st.DrawFn) -> _Scenario:
    """Random grants and assignments across tenants, cross-tenant ones included (as a
    misbehaving writer of the store might leave them), some platform-admin assignments."""
    grants = draw(st.lists(st.tuples(_ROLES, _TENANTS, _TENANTS, _SIDES, _SIDES), max_size=8))
    assignments = draw(
        st.lists(
            st.tuples(_TENANTS, _USERS, st.one_of(_ROLES, st.just("platform-admin")), _TENANTS),
            max_size=8,
        )
    )
    return grants, assignments


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(scenario=_scenarios())
async def test_no_check_is_allowed_outside_the_principals_tenant_unless_platform_admin(
    server: Server, scenario: _Scenario
) -> None:
    # Each example works in tenants of its own, so earlier examples' lines cannot matter.
    namespace = f"n{next(_NAMESPACES)}"

    def tenant(tenant_id: str) -> str:
        return f"tenants/{namespace}{tenant_id}"

    grants, assignments = scenario
    lines: list[PolicyLine] = []
    for tenant_id in ("a1", "b2", "c3"):
        lines += default_tenant_lines(tenant(tenant_id))
    for role, role_tenant, domain, resource, action in grants:
        lines.append(
            PolicyLine(
                Section.GRANT,
                (f"{tenant(role_tenant)}/roles/{role}", tenant(domain), resource, action),
            )
        )
    platform_admins = set()
    for user_tenant, user, role, role_tenant in assignments:
        principal = f"{tenant(user_tenant)}/users/{user}"
        if role == "platform-admin":
            platform_admins.add(principal)
            lines.append(PolicyLine(Section.ASSIGNMENT, (principal, "roles/platform-admin", "*")))
        else:
            lines.append(
                PolicyLine(
                    Section.ASSIGNMENT,
                    (principal, f"{tenant(role_tenant)}/roles/{role}", tenant(role_tenant)),
                )
            )
    await server.add_lines(lines)

    questions = [
        (f"{tenant(user_tenant)}/users/{user}", tenant(target), f"{resource}:{action}")
        for user_tenant in ("a1", "b2", "c3")
        for user in ("u1", "u2", "u3")
        for target in ("a1", "b2", "c3")
        for resource in ("x", "y")
        for action in ("read", "write")
    ]
    decisions = await server.batch_check(questions)
    assert len(decisions) == len(questions)
    for (principal, target, _), allowed in zip(questions, decisions, strict=True):
        if allowed and principal not in platform_admins:
            assert principal.startswith(target + "/"), (principal, target)
    # Single Checks agree with the batch (a sample, to keep the example quick).
    for question, allowed in list(zip(questions, decisions, strict=True))[::17]:
        assert await server.check(*question) is allowed
    # Inside its own tenant the owner role holds everything: the property is not vacuous.
    for user_tenant, user, role, role_tenant in assignments:
        if role == "owner" and user_tenant == role_tenant:
            principal = f"{tenant(user_tenant)}/users/{user}"
            assert await server.check(principal, tenant(user_tenant), "x:write")
