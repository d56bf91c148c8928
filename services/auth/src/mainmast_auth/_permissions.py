"""Permissions: "resource:action" strings, either side of which may be the wildcard `*`.

A granted permission implies a requested one when each side is `*` or equal:
`users:*` implies `users:read`, `*:read` implies `invoices:read`, `*:*` implies all.
A requested `*` is matched literally: asking for `users:*` asks whether the principal
holds every action on users, which only `users:*` or `*:*` grant. These are exactly the
semantics of the Casbin model's matcher (see `_policy_model`).

A side is `*`, or lowercase letters, digits and hyphens starting with a letter, with
optional dot-separated parts (`invoices`, `service-accounts`, `billing.invoices`), at most
63 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import ValidationError

WILDCARD: Final = "*"
"""Matches any resource or any action in a granted permission."""

_SIDE: Final = r"\*|[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)*"
_PERMISSION: Final = re.compile(rf"({_SIDE}):({_SIDE})")
_MAX_SIDE_LENGTH: Final = 63


@dataclass(frozen=True, slots=True)
class Permission:
    """A parsed "resource:action" permission."""

    resource: str
    """The resource side, e.g. `users` or `*`."""
    action: str
    """The action side, e.g. `read` or `*`."""

    @classmethod
    def parse(cls, value: str) -> Permission:
        """Parse "resource:action"; ValidationError(INVALID_PERMISSION) otherwise."""
        match = _PERMISSION.fullmatch(value)
        if (
            match is None
            or len(match.group(1)) > _MAX_SIDE_LENGTH
            or len(match.group(2)) > _MAX_SIDE_LENGTH
        ):
            raise ValidationError(
                'A permission is "resource:action", e.g. "users:read", "users:*" or "*:read".',
                reason=AuthErrorReason.INVALID_PERMISSION.value,
                domain=AUTH_ERROR_DOMAIN,
                metadata={"permission": value[:130]},
            )
        return cls(match.group(1), match.group(2))

    def implies(self, requested: Permission) -> bool:
        """Whether holding this permission grants `requested`."""
        return self.resource in (WILDCARD, requested.resource) and self.action in (
            WILDCARD,
            requested.action,
        )

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}"
