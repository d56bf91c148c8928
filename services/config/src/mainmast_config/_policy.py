"""The access policy: which callers may read which secrets and settings.

A policy is a list of rules. A rule grants read access to secret-name and setting-name
patterns, to callers picked by subject and/or role, optionally only in some tenants::

    rules:
      - description: the payments API reads its own secrets
        subjects: [tenants/acme/serviceAccounts/payments-api]
        secrets: ["payments/*"]
        settings: ["payments.*"]
      - roles: ["tenants/*/roles/owner"]
        tenants: [tenants/acme]
        secrets: ["**"]

A caller matches a rule when its subject matches one of `subjects` or one of its roles
matches one of `roles`, and, when the rule lists `tenants`, its tenant matches one of them.
It may read a name when a rule it matches has a pattern for the name. Patterns are exact
names or globs: `*` matches within one `/`-separated segment, `**` across segments (so
`payments/*` covers `payments/stripe-key` but not `payments/eu/stripe-key`, which
`payments/**` covers). Nothing is granted that no rule grants.

The decision is local: no call to the auth service, so a cached GetSecret answers in well
under a millisecond; secret names such as `payments/stripe-key` are not the auth service's
`resource:action` permissions. Decisions are memoised per caller and name in a bounded LRU
that belongs to the policy, so a reloaded policy starts with none.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from mainmast.auth import PLATFORM_ADMIN_ROLE
from mainmast.runtime import Principal

from ._audit import AccessKind

MAX_CACHED_DECISIONS: Final = 65_536
"""How many (caller, name) decisions a policy remembers."""

_PATTERN_CHARACTERS: Final = re.compile(r"[A-Za-z0-9._/*-]+")


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid name pattern, or None when it is."""
    if not pattern:
        return "a pattern may not be empty"
    if not _PATTERN_CHARACTERS.fullmatch(pattern):
        return "a pattern has only letters, digits, '-', '_', '.', '/', '*' and '**'"
    if "***" in pattern:
        return "'*' matches within a segment and '**' across segments; '***' means nothing"
    return None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a glob: `*` within one segment, `**` across segments.

    ValueError for a pattern `pattern_problem` refuses.
    """
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    parts = [
        "[^/]*" if piece == "*" else ".*" if piece == "**" else re.escape(piece)
        for piece in re.split(r"(\*\*|\*)", pattern)
        if piece
    ]
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class Patterns:
    """A set of name patterns, matched as one regular expression."""

    texts: tuple[str, ...]
    """The patterns as written."""
    _compiled: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = (
            re.compile("|".join(f"(?:{compile_pattern(text).pattern})" for text in self.texts))
            if self.texts
            else None
        )
        object.__setattr__(self, "_compiled", compiled)

    def __bool__(self) -> bool:
        """Whether there is any pattern."""
        return bool(self.texts)

    def matches(self, name: str) -> bool:
        """Whether one of the patterns matches all of `name`."""
        return self._compiled is not None and self._compiled.fullmatch(name) is not None

    def matches_any(self, names: Sequence[str]) -> bool:
        """Whether one of the patterns matches one of `names`."""
        return any(self.matches(name) for name in names)


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One grant: callers (by subject or role, in some tenants) may read some names."""

    subjects: Patterns = Patterns(())
    """Subjects the rule applies to, e.g. `tenants/acme/serviceAccounts/payments-api`."""
    roles: Patterns = Patterns(())
    """Roles the rule applies to, e.g. `roles/platform-admin`."""
    tenants: Patterns = Patterns(())
    """When not empty, the rule applies only to callers of these tenants."""
    secrets: Patterns = Patterns(())
    """Secret names the rule lets its callers read."""
    settings: Patterns = Patterns(())
    """Setting names the rule lets its callers read."""
    description: str = ""
    """What the rule is for, as the file says."""

    def __post_init__(self) -> None:
        if not (self.subjects or self.roles):
            raise ValueError("a rule names the subjects or roles it applies to")
        if not (self.secrets or self.settings):
            raise ValueError("a rule grants some secrets or settings")

    def applies_to(self, principal: Principal) -> bool:
        """Whether `principal` is one of the callers of this rule."""
        if self.tenants and not self.tenants.matches(principal.tenant):
            return False
        return self.subjects.matches(principal.subject) or self.roles.matches_any(principal.roles)

    def grants(self, kind: AccessKind, name: str) -> bool:
        """Whether the rule grants reading `name` of `kind`."""
        if kind is AccessKind.SECRET:
            return self.secrets.matches(name)
        if kind is AccessKind.SETTING:
            return self.settings.matches(name)
        return False


class AccessPolicy:
    """The rules, and the decisions taken with them; see the module docstring.

    `source` says where the rules came from, for logs.
    """

    __slots__ = ("_decide", "_rules", "_source")

    def __init__(self, rules: Sequence[AccessRule], *, source: str) -> None:
        self._rules = tuple(rules)
        self._source = source
        self._decide = functools.lru_cache(maxsize=MAX_CACHED_DECISIONS)(self._decide_uncached)

    @classmethod
    def platform_admins_only(cls) -> AccessPolicy:
        """The policy without a file: only callers holding `roles/platform-admin` read."""
        everything = Patterns(("**",))
        rule = AccessRule(
            roles=Patterns((PLATFORM_ADMIN_ROLE,)),
            secrets=everything,
            settings=everything,
            description="no policy file: platform admins only",
        )
        return cls([rule], source=f"default: only {PLATFORM_ADMIN_ROLE} reads")

    @classmethod
    def everyone(cls, source: str) -> AccessPolicy:
        """A policy that lets every caller read everything (development mode only)."""
        everything = Patterns(("**",))
        rule = AccessRule(subjects=everything, secrets=everything, settings=everything)
        return cls([rule], source=source)

    @property
    def rules(self) -> tuple[AccessRule, ...]:
        """The rules, in the order written."""
        return self._rules

    @property
    def source(self) -> str:
        """Where the rules came from."""
        return self._source

    def allows(self, principal: Principal, kind: AccessKind, name: str) -> bool:
        """Whether `principal` may read the secret or setting `name`."""
        return self._decide(principal.subject, principal.tenant, principal.roles, kind, name)

    def _decide_uncached(
        self, subject: str, tenant: str, roles: tuple[str, ...], kind: AccessKind, name: str
    ) -> bool:
        # The key is the caller's identity, never its credential, so no token is held here.
        principal = Principal(tenant=tenant, subject=subject, roles=roles)
        return any(rule.applies_to(principal) and rule.grants(kind, name) for rule in self._rules)
