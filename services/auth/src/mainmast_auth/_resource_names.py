"""Resource names of the auth service's principals, tenants and roles (AIP-122).

- tenant: `tenants/{tenant_id}`, also the Casbin domain of everything inside it;
- user: `tenants/{tenant_id}/users/{user_id}`;
- service account: `tenants/{tenant_id}/serviceAccounts/{service_account_id}`;
- tenant role: `tenants/{tenant_id}/roles/{role_id}`;
- platform role: `roles/platform-admin`, whose Casbin domain is `*` (every tenant).

Ids follow the contract: tenant, service account and role ids are 2 to 63 lowercase
letters, digits and hyphens starting with a letter; user ids are 1 to 63 lowercase
letters, digits, `.`, `_` and `-`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import FieldViolation, ValidationError

PLATFORM_DOMAIN: Final = "*"
"""The Casbin domain of platform roles and their grants: every tenant."""

PLATFORM_ADMIN_ROLE: Final = "roles/platform-admin"
"""The role that spans tenants."""

_TENANT_ID: Final = r"[a-z][a-z0-9-]{1,62}"
_USER_ID: Final = r"[a-z0-9._-]{1,63}"
_SERVICE_ACCOUNT_ID: Final = r"[a-z][a-z0-9-]{1,62}"
_ROLE_ID: Final = r"[a-z][a-z0-9-]{1,62}"

_TENANT_NAME: Final = re.compile(rf"tenants/({_TENANT_ID})")
_PRINCIPAL_NAME: Final = re.compile(
    rf"(tenants/{_TENANT_ID})/(?:users/{_USER_ID}|serviceAccounts/{_SERVICE_ACCOUNT_ID})"
)
_TENANT_ROLE_NAME: Final = re.compile(rf"(tenants/{_TENANT_ID})/roles/{_ROLE_ID}")


class PrincipalKind(enum.StrEnum):
    """What kind of principal a resource name names."""

    USER = "users"
    """A person with a password."""
    SERVICE_ACCOUNT = "serviceAccounts"
    """An application with client credentials."""


def invalid_name(field: str, expected: str) -> ValidationError:
    """The ValidationError(INVALID_RESOURCE_NAME) for `field`, which should look like `expected`."""
    description = f"The {field} must be a resource name like {expected}."
    return ValidationError(
        description,
        field_violations=[FieldViolation(field, description, reason="INVALID_RESOURCE_NAME")],
        reason=AuthErrorReason.INVALID_RESOURCE_NAME.value,
        domain=AUTH_ERROR_DOMAIN,
        metadata={"field": field},
    )


def tenant_name(value: str, *, field: str = "tenant") -> str:
    """`value` if it is a tenant name (`tenants/acme`); ValidationError otherwise."""
    if _TENANT_NAME.fullmatch(value) is None:
        raise invalid_name(field, "tenants/acme")
    return value


def tenant_of_principal(value: str, *, field: str = "principal") -> str:
    """The tenant name of a user or service account name; ValidationError otherwise."""
    match = _PRINCIPAL_NAME.fullmatch(value)
    if match is None:
        raise invalid_name(field, "tenants/acme/users/alice")
    return match.group(1)


def principal_kind(value: str) -> PrincipalKind:
    """Whether a (valid) principal name names a user or a service account."""
    tenant_of_principal(value)
    return PrincipalKind(value.split("/")[2])


@dataclass(frozen=True, slots=True)
class RoleName:
    """A role and the Casbin domain its assignments and grants live in."""

    name: str
    """The resource name, e.g. `tenants/acme/roles/admin` or `roles/platform-admin`."""
    domain: str
    """`tenants/{tenant_id}` for a tenant role, `*` for the platform role."""

    @property
    def is_platform_role(self) -> bool:
        """Whether the role spans tenants."""
        return self.domain == PLATFORM_DOMAIN

    @classmethod
    def parse(cls, value: str, *, field: str = "role") -> RoleName:
        """Parse a role name; ValidationError(INVALID_RESOURCE_NAME) otherwise."""
        if value == PLATFORM_ADMIN_ROLE:
            return cls(value, PLATFORM_DOMAIN)
        match = _TENANT_ROLE_NAME.fullmatch(value)
        if match is None:
            raise invalid_name(field, "tenants/acme/roles/admin or roles/platform-admin")
        return cls(value, match.group(1))

    @classmethod
    def of_tenant(cls, tenant: str, role_id: str) -> RoleName:
        """The role `role_id` of `tenant`."""
        return cls.parse(f"{tenant_name(tenant)}/roles/{role_id}")
