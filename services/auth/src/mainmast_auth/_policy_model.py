"""The Casbin model of mainmast's authorization, and its policy lines.

Domain RBAC with tenant = domain. Policy lines are Casbin's, so any Casbin adapter can
store them:

    p, <role or principal>, <domain>, <resource>, <action>    a grant
    g, <member>, <role>, <domain>                              an assignment (or role inheritance)

Tenant grants and assignments live in the tenant's domain (`tenants/acme`); the
platform role's live in domain `*` and apply in every tenant. The matcher below is the
specification: `Authorizer` decides exactly what a Casbin enforcer with this model
decides (a property test compares them), only with an index instead of a scan of every
line, and with tenant isolation enforced on top whatever the lines say.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import casbin

CASBIN_MODEL: Final = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = ((p.dom == r.dom && g(r.sub, p.sub, r.dom)) || (p.dom == "*" && g(r.sub, p.sub, "*"))) \
&& (p.obj == "*" || p.obj == r.obj) && (p.act == "*" || p.act == r.act)
"""
"""The Casbin model conf (request, policy and role definitions, effect, matcher)."""

MAX_HIERARCHY_LEVEL: Final = 10
"""Casbin's default role-manager depth: a member and up to 9 levels of roles above it."""


class Section(enum.StrEnum):
    """A Casbin policy section (and, here, its only policy type)."""

    GRANT = "p"
    """Grants: subject, domain, resource, action."""
    ASSIGNMENT = "g"
    """Assignments: member, role, domain."""


_RULE_LENGTH: Final = {Section.GRANT: 4, Section.ASSIGNMENT: 3}


class PolicyChangeKind(enum.StrEnum):
    """Whether a change adds or removes a line."""

    ADD = "add"
    """The line was added."""
    REMOVE = "remove"
    """The line was removed."""


@dataclass(frozen=True, slots=True)
class PolicyLine:
    """One Casbin policy line: its section and its fields."""

    section: Section
    """`p` (grant) or `g` (assignment)."""
    rule: tuple[str, ...]
    """The fields after the section: 4 for a grant, 3 for an assignment."""

    def __post_init__(self) -> None:
        if len(self.rule) != _RULE_LENGTH[self.section] or not all(
            isinstance(value, str) and value for value in self.rule
        ):
            raise ValueError(
                f"a {self.section.value} line has {_RULE_LENGTH[self.section]} non-empty fields"
            )

    @property
    def ptype(self) -> str:
        """The Casbin policy type, as adapters name it (`p` or `g`)."""
        return self.section.value


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A line added or removed, for the adapter: `adapter.add_policy(sec, ptype, rule)`."""

    kind: PolicyChangeKind
    """Added or removed."""
    line: PolicyLine
    """The line."""


def new_casbin_model() -> Any:
    """A fresh `casbin.model.Model` of `CASBIN_MODEL`, with no policy lines."""
    return casbin.Enforcer.new_model(text=CASBIN_MODEL)


def lines_of_model(model: Any) -> list[PolicyLine]:
    """The policy lines held by a Casbin model (after `adapter.load_policy(model)`)."""
    lines = []
    for section in Section:
        for rule in model.get_policy(section.value, section.value):
            lines.append(PolicyLine(section, tuple(rule)))
    return lines


def model_with_lines(lines: Iterable[PolicyLine]) -> Any:
    """A Casbin model holding `lines`, ready for `adapter.save_policy(model)`.

    The lines go straight into the model's lists: Casbin's `add_policies` checks each
    rule against every rule already there, which is quadratic in the number of lines.
    """
    model = new_casbin_model()
    for line in lines:
        model[line.section.value][line.ptype].policy.append(list(line.rule))
    return model


def load_lines(adapter: Any) -> list[PolicyLine]:
    """Every policy line a Casbin adapter holds."""
    model = new_casbin_model()
    adapter.load_policy(model)
    return lines_of_model(model)
