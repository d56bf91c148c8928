"""Resource names of tenants, principals and roles, and the Casbin domain of each role."""

from __future__ import annotations

import pytest

from mainmast.auth import AuthErrorReason
from mainmast.errors import ValidationError
from mainmast_auth._resource_names import (
    PLATFORM_ADMIN_ROLE,
    PLATFORM_DOMAIN,
    PrincipalKind,
    RoleName,
    principal_kind,
    tenant_name,
    tenant_of_principal,
)


@pytest.mark.parametrize(
    ("principal", "tenant", "kind"),
    [
        ("tenants/acme/users/alice", "tenants/acme", PrincipalKind.USER),
        ("tenants/acme/users/a", "tenants/acme", PrincipalKind.USER),
        ("tenants/acme/users/first.last_2-x", "tenants/acme", PrincipalKind.USER),
        ("tenants/a1/serviceAccounts/payments-api", "tenants/a1", PrincipalKind.SERVICE_ACCOUNT),
    ],
)
def test_principal_names_give_their_tenant_and_kind(
    principal: str, tenant: str, kind: PrincipalKind
) -> None:
    assert tenant_of_principal(principal) == tenant
    assert principal_kind(principal) is kind


@pytest.mark.parametrize(
    "principal",
    [
        "alice",
        "tenants/acme",
        "tenants/acme/users/",
        "tenants/acme/users/Alice",
        "tenants/acme/users/al ice",
        "tenants/acme/users/" + "a" * 64,
        "tenants/acme/serviceAccounts/Payments",
        "tenants/acme/serviceAccounts/p",
        "tenants/acme/groups/admins",
        "tenants/a/users/alice",
        "tenants/acme/users/alice/",
        "tenants//users/alice",
        "/tenants/acme/users/alice",
        "tenants/acme/users/../../tenants/globex/users/gina",
    ],
)
def test_malformed_principal_names_are_validation_errors(principal: str) -> None:
    with pytest.raises(ValidationError) as caught:
        tenant_of_principal(principal)
    error = caught.value
    assert error.reason == AuthErrorReason.INVALID_RESOURCE_NAME.value
    assert error.metadata == {"field": "principal"}
    assert [violation.field for violation in error.field_violations] == ["principal"]


@pytest.mark.parametrize("name", ["tenants/ab", "tenants/acme-corp", "tenants/a" + "b" * 62])
def test_tenant_names(name: str) -> None:
    assert tenant_name(name) == name


@pytest.mark.parametrize(
    "name", ["acme", "tenants/a", "tenants/Acme", "tenants/1acme", "tenants/acme/", "*", ""]
)
def test_malformed_tenant_names_name_their_field(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        tenant_name(name, field="parent")
    assert caught.value.metadata == {"field": "parent"}


def test_roles_live_in_their_tenants_domain_and_the_platform_role_in_every_tenant() -> None:
    admin = RoleName.parse("tenants/acme/roles/admin")
    assert (admin.domain, admin.is_platform_role) == ("tenants/acme", False)
    platform = RoleName.parse(PLATFORM_ADMIN_ROLE)
    assert (platform.domain, platform.is_platform_role) == (PLATFORM_DOMAIN, True)
    assert RoleName.of_tenant("tenants/acme", "viewer") == RoleName(
        "tenants/acme/roles/viewer", "tenants/acme"
    )


@pytest.mark.parametrize(
    "role", ["roles/admin", "roles/", "tenants/acme/roles/x", "tenants/acme/roles/Admin", "admin"]
)
def test_malformed_roles_are_validation_errors(role: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RoleName.parse(role)
    assert caught.value.reason == AuthErrorReason.INVALID_RESOURCE_NAME.value
