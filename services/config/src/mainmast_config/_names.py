"""Secret names and how each backend spells them.

A name is what applications ask for: `database-password`, `payments/stripe-key`. It has
letters, digits, `-`, `_`, `.` and `/`; `/` separates segments, and no segment is empty or
starts with `.` (so `..`, hidden files and Kubernetes' `..data` internals are never names).

Backends with a narrower alphabet map names one way, and back for listing:

| name                  | environment / .env        | Key Vault              |
| --------------------- | ------------------------- | ---------------------- |
| `database-password`   | `DATABASE_PASSWORD`       | `database-password`    |
| `payments/stripe-key` | `PAYMENTS__STRIPE_KEY`    | `payments--stripe-key` |
| `checkout.max_items`  | `CHECKOUT_MAX_ITEMS`      | `checkout-max-items`   |

The mappings lose `_` and `.` (both read as `-` when a backend's names are listed); a name
maps the same way whichever of the three it uses, so reads find it either way.
"""

from __future__ import annotations

import re
from typing import Final

from ._errors import invalid_name

MAX_NAME_LENGTH: Final = 256
"""The longest name accepted."""

_NAME: Final = re.compile(r"[A-Za-z0-9._/-]+")
_ENVIRONMENT_VARIABLE: Final = re.compile(r"[A-Z0-9_]+")
_KEY_VAULT_NAME: Final = re.compile(r"[0-9A-Za-z-]{1,127}")


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid secret or setting name, or None when it is."""
    if not name:
        return "a name may not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"a name has at most {MAX_NAME_LENGTH} characters"
    if not _NAME.fullmatch(name):
        return "a name has only letters, digits, '-', '_', '.' and '/'"
    if any(not segment or segment.startswith(".") for segment in name.split("/")):
        return "no '/'-separated segment of a name is empty or starts with '.'"
    return None


def check_name(name: str, *, field: str = "name") -> str:
    """Return `name` if it is valid; ValidationError (INVALID_NAME) if not."""
    problem = name_problem(name)
    if problem is not None:
        raise invalid_name(name, problem, field=field)
    return name


def check_prefix(prefix: str, *, field: str) -> str:
    """Return `prefix` if a name could start with it (empty: any name); ValidationError
    (INVALID_NAME) if not."""
    if len(prefix) > MAX_NAME_LENGTH or (prefix and not _NAME.fullmatch(prefix)):
        raise invalid_name(
            prefix, "a prefix has only letters, digits, '-', '_', '.' and '/'", field=field
        )
    return prefix


def environment_variable(name: str, prefix: str = "") -> str:
    """The environment variable (or .env key) that holds `name`: `DATABASE_PASSWORD`."""
    spelled = name.upper().replace("/", "__").replace("-", "_").replace(".", "_")
    return prefix + spelled


def name_of_environment_variable(variable: str, prefix: str = "") -> str | None:
    """The name an environment variable holds, or None if it holds none (wrong prefix,
    lowercase letters, or a spelling that maps to no valid name)."""
    if not variable.startswith(prefix):
        return None
    spelled = variable[len(prefix) :]
    if not _ENVIRONMENT_VARIABLE.fullmatch(spelled):
        return None
    name = spelled.lower().replace("__", "/").replace("_", "-")
    return name if name_problem(name) is None else None


def key_vault_name(name: str) -> str | None:
    """The Key Vault secret name of `name`, or None when Key Vault cannot spell it (too long)."""
    spelled = name.replace("/", "--").replace("_", "-").replace(".", "-")
    return spelled if _KEY_VAULT_NAME.fullmatch(spelled) else None


def name_of_key_vault_name(spelled: str) -> str | None:
    """The name a Key Vault secret name spells, or None if it spells no valid name."""
    name = spelled.replace("--", "/")
    return name if name_problem(name) is None else None
