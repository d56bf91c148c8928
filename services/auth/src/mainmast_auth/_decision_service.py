"""Check and BatchCheck: permission decisions for callers of the service.

A decision is `Authorizer.check` on this replica's synced authorizer: no database access,
so its cost does not grow with the number of stored lines.

Tenant isolation applies to the question as well as to the answer. A caller may ask
about principals and tenants of its own tenant only, unless it holds
`roles/platform-admin`; anything else is PERMISSION_DENIED, decided from the resource
names alone, so a caller learns nothing about another tenant (not even whether a
principal there exists). The answer itself is isolated by the authorizer: a principal is
never allowed anything outside its tenant unless it is a platform admin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import PermissionDeniedError, ValidationError

from ._permissions import Permission
from ._policy_sync import PolicySync
from ._resource_names import tenant_name, tenant_of_principal

MAX_BATCH_CHECKS: Final = 1000
"""Most checks one BatchCheck may carry (the contract's limit)."""


@dataclass(frozen=True, slots=True)
class CheckQuestion:
    """May `principal` do `permission` in `tenant`?"""

    principal: str
    """Resource name of a user or service account."""
    tenant: str
    """Resource name of the tenant the action happens in."""
    permission: str
    """"resource:action"."""


def _other_tenant() -> PermissionDeniedError:
    return PermissionDeniedError(
        "The caller may only ask about its own tenant.",
        reason=AuthErrorReason.PERMISSION_MISSING.value,
        domain=AUTH_ERROR_DOMAIN,
    )


class DecisionService:
    """Answers Check and BatchCheck for an authenticated caller."""

    __slots__ = ("_sync",)

    def __init__(self, sync: PolicySync) -> None:
        self._sync = sync

    def check(self, caller: str, question: CheckQuestion) -> bool:
        """The decision for one question; ValidationError for malformed fields,
        PermissionDeniedError when the question reaches outside the caller's tenant."""
        return self.check_many(caller, [question])[0]

    def check_many(self, caller: str, questions: Sequence[CheckQuestion]) -> list[bool]:
        """The decisions, in order; every question is validated and isolated first, so a
        batch is answered whole or refused whole."""
        if len(questions) > MAX_BATCH_CHECKS:
            raise ValidationError(
                f"A batch holds at most {MAX_BATCH_CHECKS} checks, got {len(questions)}.",
                metadata={"field": "requests"},
            )
        authorizer = self._sync.authorizer
        caller_tenant = tenant_of_principal(caller, field="caller")
        single = len(questions) == 1
        parsed = [
            _validated(question, None if single else index)
            for index, question in enumerate(questions)
        ]
        if not authorizer.is_platform_admin(caller):
            for principal_tenant, question, _ in parsed:
                if principal_tenant != caller_tenant or question.tenant != caller_tenant:
                    raise _other_tenant()
        return [
            authorizer.decide(question.principal, principal_tenant, question.tenant, requested)
            for principal_tenant, question, requested in parsed
        ]


def _validated(question: CheckQuestion, index: int | None) -> tuple[str, CheckQuestion, Permission]:
    """The principal's tenant, the question and its parsed permission; ValidationError
    naming the field (of request `index` in a batch) that is malformed."""
    prefix = "" if index is None else f"requests[{index}]."
    principal_tenant = tenant_of_principal(question.principal, field=f"{prefix}principal")
    tenant_name(question.tenant, field=f"{prefix}tenant")
    return principal_tenant, question, Permission.parse(question.permission)
