"""The `reason` and `domain` of the errors the config service raises, and their factories.

The reasons are value names of `mainmast.config.v1.ErrorReason` (error_reason.proto), the
wire contract; a test pins every member here to a value of that enum. Errors are built with
the taxonomy's own classes (a NotFoundError with reason SECRET_NOT_FOUND), so a client gets
the right class back without importing anything of this service. No message or metadata
built here ever contains a secret value.
"""

# ruff: noqa: S105 -- the values are error reason names, not passwords

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Final

from mainmast.errors import (
    FailedPreconditionError,
    FieldViolation,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)

CONFIG_ERROR_DOMAIN: Final = "config.mainmast.dev"
"""The ErrorInfo `domain` of every error of the config service."""


class ConfigErrorReason(enum.StrEnum):
    """ErrorInfo reasons raised by the config core, each the name of an `ErrorReason` value."""

    SECRET_ACCESS_DENIED = "SECRET_ACCESS_DENIED"
    """The caller may not read this secret (whether or not it exists)."""
    SETTING_ACCESS_DENIED = "SETTING_ACCESS_DENIED"
    """The caller may not read this setting (whether or not it exists)."""
    SECRET_NOT_FOUND = "SECRET_NOT_FOUND"
    """No backend has a secret of this name."""
    SECRET_VERSION_NOT_FOUND = "SECRET_VERSION_NOT_FOUND"
    """The secret exists, but not in the version asked for."""
    INVALID_NAME = "INVALID_NAME"
    """A name is empty or has characters a name may not have."""
    TOO_MANY_NAMES = "TOO_MANY_NAMES"
    """A batch or watch names more items than allowed."""
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    """A page token is malformed, or from a call with other arguments."""
    BACKEND_ACCESS_DENIED = "BACKEND_ACCESS_DENIED"
    """A backend refuses the service's own identity."""
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    """A backend failed or is unreachable."""
    BACKEND_THROTTLED = "BACKEND_THROTTLED"
    """A backend throttles the service (HTTP 429)."""


def secret_not_found(name: str) -> NotFoundError:
    """NOT_FOUND / SECRET_NOT_FOUND for `name`."""
    return NotFoundError(
        f"Secret {name!r} was not found.",
        reason=ConfigErrorReason.SECRET_NOT_FOUND,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"name": name},
    )


def secret_version_not_found(name: str, version: str) -> NotFoundError:
    """NOT_FOUND / SECRET_VERSION_NOT_FOUND for `name` at `version`."""
    return NotFoundError(
        f"Secret {name!r} has no version {version!r}.",
        reason=ConfigErrorReason.SECRET_VERSION_NOT_FOUND,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"name": name, "version": version},
    )


def secret_access_denied(name: str) -> PermissionDeniedError:
    """PERMISSION_DENIED / SECRET_ACCESS_DENIED for `name`: the same whether it exists or not."""
    return _access_denied("secret", name, ConfigErrorReason.SECRET_ACCESS_DENIED)


def setting_access_denied(name: str) -> PermissionDeniedError:
    """PERMISSION_DENIED / SETTING_ACCESS_DENIED for `name`: the same whether it exists or not."""
    return _access_denied("setting", name, ConfigErrorReason.SETTING_ACCESS_DENIED)


def _access_denied(what: str, name: str, reason: ConfigErrorReason) -> PermissionDeniedError:
    # Only the name asked for goes in: nothing a backend knows, so nothing says it exists.
    return PermissionDeniedError(
        f"The caller may not read {what} {name!r}.",
        reason=reason,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"name": name},
    )


def too_many_names(field: str, count: int, max_items: int) -> ValidationError:
    """INVALID_ARGUMENT / TOO_MANY_NAMES: `field` lists `count` items, more than `max_items`."""
    why = f"at most {max_items} items, not {count}"
    return _invalid_field(
        f"Too many names in {field}",
        field,
        why,
        reason=ConfigErrorReason.TOO_MANY_NAMES,
        metadata={"max_items": str(max_items)},
    )


def invalid_page_token(why: str) -> ValidationError:
    """INVALID_ARGUMENT / INVALID_PAGE_TOKEN."""
    return _invalid_field(
        "Invalid page token", "page_token", why, reason=ConfigErrorReason.INVALID_PAGE_TOKEN
    )


def invalid_argument(field: str, why: str) -> ValidationError:
    """INVALID_ARGUMENT (the taxonomy's own reason) for a request field no specific reason
    covers, such as a negative page size."""
    return _invalid_field(f"Invalid {field}", field, why, metadata={"field": field})


def invalid_name(name: str, why: str, *, field: str = "name") -> ValidationError:
    """INVALID_ARGUMENT / INVALID_NAME, with a BadRequest violation on `field`."""
    return _invalid_field(
        f"Invalid name {name!r}",
        field,
        why,
        reason=ConfigErrorReason.INVALID_NAME,
        metadata={"field": field},
    )


def _invalid_field(
    what: str,
    field: str,
    why: str,
    *,
    reason: ConfigErrorReason | None = None,
    metadata: dict[str, str] | None = None,
) -> ValidationError:
    """A ValidationError `what: why.` with one BadRequest violation, on `field`."""
    return ValidationError(
        f"{what}: {why}.",
        field_violations=[FieldViolation(field=field, description=why)],
        reason=reason,
        domain=CONFIG_ERROR_DOMAIN,
        metadata=metadata,
    )


def backend_access_denied(backend: str, detail: str) -> FailedPreconditionError:
    """FAILED_PRECONDITION / BACKEND_ACCESS_DENIED: an operator must grant the service access."""
    return FailedPreconditionError(
        f"Backend {backend} refused the service's identity: {detail}",
        reason=ConfigErrorReason.BACKEND_ACCESS_DENIED,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"backend": backend},
    )


def backend_unavailable(
    backend: str, detail: str, *, retry_after: float | timedelta | None = None
) -> UnavailableError:
    """UNAVAILABLE / BACKEND_UNAVAILABLE: the backend failed or could not be reached."""
    return UnavailableError(
        f"Backend {backend} is unavailable: {detail}",
        retry_after=retry_after,
        reason=ConfigErrorReason.BACKEND_UNAVAILABLE,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"backend": backend},
    )


def backend_throttled(backend: str, *, retry_after: float | timedelta | None) -> UnavailableError:
    """UNAVAILABLE / BACKEND_THROTTLED, with the backend's Retry-After.

    UNAVAILABLE and not RESOURCE_EXHAUSTED, as the contract says: the caller exhausted no
    quota of its own, the service's backend is busy.
    """
    return UnavailableError(
        f"Backend {backend} is throttling the service.",
        retry_after=retry_after,
        reason=ConfigErrorReason.BACKEND_THROTTLED,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"backend": backend},
    )
