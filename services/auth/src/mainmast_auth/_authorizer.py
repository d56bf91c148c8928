"""Authorization decisions: Casbin domain RBAC, tenant isolation enforced in code.

`Authorizer.check(principal, tenant, permission)` is allowed when

1. the principal acts in its own tenant, or holds `roles/platform-admin`: tenant
   isolation, decided from the resource names before any policy is read, so no line in
   the policy store (however it got there) lets a principal of tenant A act in tenant B;
2. and the principal, or a role it holds in that tenant (inherited roles included),
   is granted a permission implying the requested one in that tenant, or through a
   platform role (domain `*`) in every tenant.

Rule 2 is the Casbin model of `_policy_model`, decided on a `PolicyIndex` in time that does
not grow with the number of policy lines. Mutations return the `PolicyChange` to persist
through a Casbin adapter; `replace_lines` swaps in a freshly loaded set at once (a policy
reload on another replica's change).

Every tenant starts with four roles (`default_tenant_lines`):

    owner   *:*       and everything below
    admin   users:*, service-accounts:*, roles:*, tokens:revoke, and member's
    member  viewer's
    viewer  *:read

and `roles/platform-admin` holds `*:*` in every tenant (`platform_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import ValidationError

from ._permissions import WILDCARD, Permission
from ._policy_index import PolicyIndex
from ._policy_model import (
    PolicyChange,
    PolicyChangeKind,
    PolicyLine,
    Section,
    load_lines,
    model_with_lines,
)
from ._resource_names import (
    PLATFORM_ADMIN_ROLE,
    PLATFORM_DOMAIN,
    RoleName,
    tenant_name,
    tenant_of_principal,
)

DEFAULT_ROLE_IDS: Final = ("owner", "admin", "member", "viewer")
"""The roles every tenant starts with, most powerful first."""

_DEFAULT_GRANTS: Final = {
    "owner": ("*:*",),
    "admin": ("users:*", "service-accounts:*", "roles:*", "tokens:revoke"),
    "member": (),
    "viewer": ("*:read",),
}
# Each role inherits the one below it.
_DEFAULT_INHERITANCE: Final = (("owner", "admin"), ("admin", "member"), ("member", "viewer"))


def _grant(subject: str, domain: str, permission: Permission) -> PolicyLine:
    return PolicyLine(Section.GRANT, (subject, domain, permission.resource, permission.action))


def _assignment(member: str, role: str, domain: str) -> PolicyLine:
    return PolicyLine(Section.ASSIGNMENT, (member, role, domain))


def default_tenant_lines(tenant: str) -> list[PolicyLine]:
    """The policy lines of a new tenant's default roles and their inheritance."""
    domain = tenant_name(tenant)
    lines = [
        _grant(f"{domain}/roles/{role_id}", domain, Permission.parse(permission))
        for role_id, permissions in _DEFAULT_GRANTS.items()
        for permission in permissions
    ]
    lines += [
        _assignment(f"{domain}/roles/{member}", f"{domain}/roles/{role}", domain)
        for member, role in _DEFAULT_INHERITANCE
    ]
    return lines


def platform_lines() -> list[PolicyLine]:
    """The policy lines of the platform role: `*:*` in every tenant."""
    return [_grant(PLATFORM_ADMIN_ROLE, PLATFORM_DOMAIN, Permission(WILDCARD, WILDCARD))]


def _role_tenant_mismatch(principal: str, role: str) -> ValidationError:
    return ValidationError(
        "A tenant role can only be given to a principal of the same tenant.",
        reason=AuthErrorReason.ROLE_TENANT_MISMATCH.value,
        domain=AUTH_ERROR_DOMAIN,
        metadata={"role": role, "principal": principal},
    )


class Authorizer:
    """Decides checks and keeps the policy lines; one per service process.

    Not thread-safe for mutation: mutate from the event loop's thread (checks may run
    anywhere, they only read).
    """

    __slots__ = ("_index",)

    def __init__(self, lines: Iterable[PolicyLine] = ()) -> None:
        self._index = PolicyIndex(lines)

    @classmethod
    def from_adapter(cls, adapter: Any) -> Authorizer:
        """An authorizer holding every line a Casbin adapter loads."""
        return cls(load_lines(adapter))

    def __len__(self) -> int:
        return len(self._index)

    # Decisions

    def check(self, principal: str, tenant: str, permission: str) -> bool:
        """May `principal` do `permission` in `tenant`? Malformed arguments: ValidationError."""
        principal_tenant = tenant_of_principal(principal)
        tenant_name(tenant)
        requested = Permission.parse(permission)
        return self.decide(principal, principal_tenant, tenant, requested)

    def check_many(self, checks: Iterable[tuple[str, str, str]]) -> list[bool]:
        """`check` for each (principal, tenant, permission), in order."""
        return [
            self.check(principal, tenant, permission) for principal, tenant, permission in checks
        ]

    def check_platform(self, principal: str, permission: str) -> bool:
        """May `principal` do a platform-wide `permission` (create tenants, rotate keys)?

        Only grants of platform roles count: a tenant role's `*:*` is no platform right.
        """
        tenant_of_principal(principal)
        requested = Permission.parse(permission)
        index = self._index
        platform_subjects = index.subjects(principal, PLATFORM_DOMAIN)
        return index.grants_any(
            platform_subjects, PLATFORM_DOMAIN, requested.resource, requested.action
        )

    def is_platform_admin(self, principal: str) -> bool:
        """Whether `principal` holds `roles/platform-admin` (directly or inherited)."""
        tenant_of_principal(principal)
        return PLATFORM_ADMIN_ROLE in self._index.subjects(principal, PLATFORM_DOMAIN)

    def decide(
        self, principal: str, principal_tenant: str, tenant: str, requested: Permission
    ) -> bool:
        """`check` for arguments validated already: `principal_tenant` is the tenant of
        `principal`, `tenant` a tenant name, `requested` parsed."""
        index = self._index
        platform_subjects = index.subjects(principal, PLATFORM_DOMAIN)
        if principal_tenant != tenant and PLATFORM_ADMIN_ROLE not in platform_subjects:
            return False
        resource, action = requested.resource, requested.action
        return index.grants_any(
            index.subjects(principal, tenant), tenant, resource, action
        ) or index.grants_any(platform_subjects, PLATFORM_DOMAIN, resource, action)

    # Changes

    def add_tenant(self, tenant: str) -> list[PolicyChange]:
        """Give a new tenant its default roles; the changes made (none if present)."""
        return self._apply(PolicyChangeKind.ADD, default_tenant_lines(tenant))

    def add_platform_role(self) -> list[PolicyChange]:
        """Grant the platform role its rights; the changes made (none if present)."""
        return self._apply(PolicyChangeKind.ADD, platform_lines())

    def assign_role(self, principal: str, role: str) -> list[PolicyChange]:
        """Give `principal` the role; the change made (none if it held it already)."""
        return self._apply(PolicyChangeKind.ADD, [self._assignment_line(principal, role)])

    def unassign_role(self, principal: str, role: str) -> list[PolicyChange]:
        """Take the role from `principal`; the change made (none if it did not hold it)."""
        return self._apply(PolicyChangeKind.REMOVE, [self._assignment_line(principal, role)])

    def grant_permission(self, role: str, permission: str) -> list[PolicyChange]:
        """Grant `permission` to the role; the change made (none if granted already)."""
        return self._apply(PolicyChangeKind.ADD, [self._grant_line(role, permission)])

    def revoke_permission(self, role: str, permission: str) -> list[PolicyChange]:
        """Revoke `permission` from the role; the change made (none if it lacked it)."""
        return self._apply(PolicyChangeKind.REMOVE, [self._grant_line(role, permission)])

    def apply(self, changes: Iterable[PolicyChange]) -> None:
        """Apply changes made elsewhere (another replica's, read back from the store)."""
        for change in changes:
            if change.kind is PolicyChangeKind.ADD:
                self._index.add(change.line)
            else:
                self._index.remove(change.line)

    def replace_lines(self, lines: Iterable[PolicyLine]) -> None:
        """Replace every line at once with a freshly loaded set."""
        # Build first, swap after: checks keep seeing the old, complete index until then.
        self._index = PolicyIndex(lines)

    def _apply(self, kind: PolicyChangeKind, lines: list[PolicyLine]) -> list[PolicyChange]:
        change = self._index.add if kind is PolicyChangeKind.ADD else self._index.remove
        return [PolicyChange(kind, line) for line in lines if change(line)]

    @staticmethod
    def _assignment_line(principal: str, role: str) -> PolicyLine:
        principal_tenant = tenant_of_principal(principal)
        role_name = RoleName.parse(role)
        if not role_name.is_platform_role and role_name.domain != principal_tenant:
            raise _role_tenant_mismatch(principal, role)
        return _assignment(principal, role_name.name, role_name.domain)

    @staticmethod
    def _grant_line(role: str, permission: str) -> PolicyLine:
        role_name = RoleName.parse(role)
        return _grant(role_name.name, role_name.domain, Permission.parse(permission))

    # Reading

    def roles_of(self, principal: str) -> list[str]:
        """The roles assigned to `principal` directly, sorted (its platform role included)."""
        principal_tenant = tenant_of_principal(principal)
        index = self._index
        return sorted(
            index.roles_of(principal, principal_tenant) | index.roles_of(principal, PLATFORM_DOMAIN)
        )

    def permissions_of(self, role: str) -> list[str]:
        """The permissions granted to the role directly, sorted."""
        role_name = RoleName.parse(role)
        return sorted(
            f"{resource}:{action}"
            for resource, action in self._index.grants_of(role_name.name, role_name.domain)
        )

    def lines(self) -> Iterator[PolicyLine]:
        """Every policy line held."""
        return self._index.lines()

    def casbin_model(self) -> Any:
        """A Casbin model holding every line, for `adapter.save_policy(model)`."""
        return model_with_lines(self._index.lines())
