"""The error classes, the one table that gives each its gRPC code and HTTP status, and the
rules that pick a class back from a status. `mainmast.errors` is the public face of this
module and draws the hierarchy."""

# ruff: noqa: E501 -- the table below reads best as one row per class, whatever its width

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Final, NamedTuple, TypeVar

import grpc

DEFAULT_DOMAIN: Final = "mainmast.dev"
"""The ErrorInfo domain of an error raised without one."""

PROBLEM_TYPE_BASE: Final = "https://mainmast.dev/problems/"
"""Where the RFC 9457 problem type URIs of the taxonomy live: one per row of the table."""

CONCEALED_INTERNAL_MESSAGE: Final = "Internal error."
"""All a caller learns of an exception that is not a MainmastError."""

# AIP-193: a reason is UPPER_SNAKE_CASE, at most 63 characters.
_REASON_PATTERN: Final = re.compile(r"[A-Z][A-Z0-9_]+[A-Z0-9]")
_MAX_REASON_LENGTH: Final = 63
# A domain names a service (DNS names stop at 253); the bound also keeps the one part of a
# status that is never trimmed small enough to fit gRPC's trailer limit.
_MAX_DOMAIN_LENGTH: Final = 253
# google.protobuf.Duration, which carries RetryInfo, ends at 10,000 years.
_MAX_RETRY_AFTER: Final = timedelta(seconds=315_576_000_000)

ResourceId = str | int | uuid.UUID
"""What `NotFoundError("User", user_id)` and `AlreadyExistsError` accept as an id."""


def checked_text(value: object, what: str) -> str:
    """Return `value` if it is a str the wire can carry (UTF-8); TypeError or ValueError if not."""
    if not isinstance(value, str):
        # The value itself stays out of the message: it may be a credential.
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{what} is not valid UTF-8 (a lone surrogate)") from exc
    return value


def _checked_reason(reason: object) -> str:
    text = checked_text(reason, "reason")
    if len(text) > _MAX_REASON_LENGTH or not _REASON_PATTERN.fullmatch(text):
        raise ValueError(
            f"reason must be UPPER_SNAKE_CASE, 3 to {_MAX_REASON_LENGTH} characters "
            f"([A-Z][A-Z0-9_]+[A-Z0-9]), got {text!r}"
        )
    return text


def _checked_domain(domain: object) -> str:
    text = checked_text(domain, "domain")
    if not text or len(text) > _MAX_DOMAIN_LENGTH:
        raise ValueError(f"domain must be 1 to {_MAX_DOMAIN_LENGTH} characters, got {text!r}")
    return text


def _checked_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping of str to str, got {type(metadata).__name__}")
    return {
        checked_text(key, "metadata key"): checked_text(value, f"metadata value of {key!r}")
        for key, value in metadata.items()
    }


def _checked_retry_after(retry_after: float | timedelta | None) -> timedelta | None:
    if retry_after is None:
        return None
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float | timedelta):
        raise TypeError(
            f"retry_after must be seconds (int or float) or a timedelta, "
            f"got {type(retry_after).__name__}"
        )
    if isinstance(retry_after, timedelta):
        delay = retry_after
    elif not 0 <= retry_after <= _MAX_RETRY_AFTER.total_seconds():  # NaN fails this too
        raise ValueError(f"retry_after must be 0 to {_MAX_RETRY_AFTER} seconds, got {retry_after}")
    else:
        delay = timedelta(seconds=retry_after)
    if not timedelta(0) <= delay <= _MAX_RETRY_AFTER:
        raise ValueError(f"retry_after must be between 0 and {_MAX_RETRY_AFTER}, got {delay}")
    return delay


_Violation = TypeVar("_Violation", "FieldViolation", "QuotaViolation")


def _checked_violations(
    violations: Iterable[_Violation], kind: type[_Violation], what: str
) -> tuple[_Violation, ...]:
    if isinstance(violations, str | bytes):
        raise TypeError(f"{what} must be an iterable of {kind.__name__}, got a string")
    checked = tuple(violations)
    for violation in checked:
        if not isinstance(violation, kind):
            raise TypeError(f"{what} must hold {kind.__name__}, got {type(violation).__name__}")
    return checked


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request (google.rpc.BadRequest.FieldViolation)."""

    field: str
    """Path to the field, dots between names and brackets around indexes: `emails[1].domain`."""
    description: str
    """Why the value is not acceptable, for a human."""
    reason: str = ""
    """A machine-readable cause (`MISSING`, `TOO_LONG`), empty when there is none."""

    def __post_init__(self) -> None:
        checked_text(self.field, "field violation field")
        checked_text(self.description, "field violation description")
        checked_text(self.reason, "field violation reason")


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One quota that ran out (google.rpc.QuotaFailure.Violation)."""

    subject: str
    """Whose quota it is: `tenant:acme`, `project:123`."""
    description: str
    """Which limit was reached, for a human: `60 requests per minute`."""

    def __post_init__(self) -> None:
        checked_text(self.subject, "quota violation subject")
        checked_text(self.description, "quota violation description")


@dataclass(frozen=True, slots=True)
class ErrorFields:
    """Everything one error carries across a process boundary (gRPC, HTTP, pickle)."""

    message: str
    """The human-readable message."""
    reason: str
    """The UPPER_SNAKE_CASE cause programs branch on."""
    domain: str
    """Who defines the reason: `mainmast.dev`, `auth.mainmast.dev`."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The dynamic parts of the message."""
    retry_after: timedelta | None = None
    """How long to wait before retrying, when that is known."""
    field_violations: tuple[FieldViolation, ...] = ()
    """The invalid fields of the request."""
    quota_violations: tuple[QuotaViolation, ...] = ()
    """The quotas that ran out."""


class MainmastError(Exception):
    """The base of every mainmast error; a status of unknown kind (UNKNOWN, 500).

    `message` is for humans; `reason` (UPPER_SNAKE_CASE, defaulting to the class's) and
    `domain` identify the error for programs; `metadata` holds its dynamic parts as strings.
    """

    grpc_code: ClassVar[grpc.StatusCode]
    """The gRPC status code of this class, from the table."""
    http_status: ClassVar[int]
    """The HTTP status of this class, from the table."""
    default_reason: ClassVar[str]
    """The reason of an error raised without one. A subclass that declares its own is
    recognised by it when a status is turned back into an error."""
    title: ClassVar[str]
    """A short summary of the kind, the same for every occurrence (problem+json `title`)."""
    problem_type: ClassVar[str]
    """The RFC 9457 problem type URI of the kind."""
    default_domain: ClassVar[str] = DEFAULT_DOMAIN
    """The domain of an error raised without one; a service's subclasses may set theirs."""

    message: str
    """For humans; also the gRPC status message and the problem's `detail`."""
    reason: str
    """UPPER_SNAKE_CASE; what programs branch on, together with `domain`."""
    domain: str
    """Who defines the reason."""
    metadata: dict[str, str]
    """The dynamic parts of the message, as strings."""
    retry_after: timedelta | None
    """How long to wait before retrying (RetryInfo); set by the classes that take it."""
    field_violations: tuple[FieldViolation, ...]
    """The invalid fields (BadRequest); set by ValidationError."""
    quota_violations: tuple[QuotaViolation, ...]
    """The quotas that ran out (QuotaFailure); set by RateLimitedError."""

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        checked_text(message, "message")
        super().__init__(message)
        self.message = message
        self.reason = _checked_reason(self.default_reason if reason is None else reason)
        self.domain = _checked_domain(self.default_domain if domain is None else domain)
        self.metadata = _checked_metadata(metadata)
        self.retry_after = None
        self.field_violations = ()
        self.quota_violations = ()

    def fields(self) -> ErrorFields:
        """What this error carries, as one value."""
        return ErrorFields(
            message=self.message,
            reason=self.reason,
            domain=self.domain,
            metadata=dict(self.metadata),
            retry_after=self.retry_after,
            field_violations=self.field_violations,
            quota_violations=self.quota_violations,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles as cls(*args), which would lose everything but the message.
        return (restore_error, (type(self), self.fields()))


def restore_error(error_class: type[MainmastError], fields: ErrorFields) -> MainmastError:
    """An instance of `error_class` carrying `fields`, without calling its constructor.

    Statuses from the wire are taken as they are (a foreign server's reason need not follow
    our rules), and a subclass's constructor may take arguments of its own.
    """
    error = error_class.__new__(error_class, fields.message)
    Exception.__init__(error, fields.message)
    error.message = fields.message
    error.reason = fields.reason
    error.domain = fields.domain
    error.metadata = dict(fields.metadata)
    error.retry_after = fields.retry_after
    error.field_violations = fields.field_violations
    error.quota_violations = fields.quota_violations
    return error


class ValidationError(MainmastError):
    """The request is invalid whatever the state of the system (a malformed or missing field)."""

    def __init__(
        self,
        message: str,
        *,
        field_violations: Iterable[FieldViolation] = (),
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, domain=domain, metadata=metadata)
        self.field_violations = _checked_violations(
            field_violations, FieldViolation, "field_violations"
        )


class OutOfRangeError(MainmastError):
    """A value is past the valid range of the moment (a page after the last one)."""


class FailedPreconditionError(MainmastError):
    """The system is not in a state that allows the operation (a suspended tenant)."""


class UnauthenticatedError(MainmastError):
    """The caller's credentials are missing, invalid or expired."""


class PermissionDeniedError(MainmastError):
    """The caller is known but may not do this."""


def _about_resource(
    first: str,
    resource_id: ResourceId | None,
    metadata: Mapping[str, str] | None,
    outcome: str,
) -> tuple[str, Mapping[str, str] | None]:
    """The message and metadata of `Error(message)` or `Error(resource_type, resource_id)`."""
    if resource_id is None:
        return first, metadata
    resource_type = checked_text(first, "resource type")
    if isinstance(resource_id, bool) or not isinstance(resource_id, str | int | uuid.UUID):
        raise TypeError(f"resource id must be a str, int or UUID, got {type(resource_id).__name__}")
    identifier = checked_text(str(resource_id), "resource id")
    about = {"resource_type": resource_type, "resource_id": identifier}
    return f"{resource_type} '{identifier}' {outcome}.", about | dict(metadata or {})


class NotFoundError(MainmastError):
    """The resource does not exist (or the caller may not know that it does).

    `NotFoundError("User", user_id)` says "User '42' was not found." and puts
    `resource_type` and `resource_id` in metadata; `NotFoundError(message)` works too.
    """

    def __init__(
        self,
        message_or_resource_type: str,
        resource_id: ResourceId | None = None,
        /,
        *,
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        message, metadata = _about_resource(
            message_or_resource_type, resource_id, metadata, "was not found"
        )
        super().__init__(message, reason=reason, domain=domain, metadata=metadata)


class ConflictError(MainmastError):
    """The operation lost a race with another (a concurrent update): read again, then retry."""


class AlreadyExistsError(ConflictError):
    """The resource the caller tried to create exists already.

    Takes `(message)` or `(resource_type, resource_id)`, as NotFoundError does.
    """

    def __init__(
        self,
        message_or_resource_type: str,
        resource_id: ResourceId | None = None,
        /,
        *,
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        message, metadata = _about_resource(
            message_or_resource_type, resource_id, metadata, "already exists"
        )
        super().__init__(message, reason=reason, domain=domain, metadata=metadata)


class RateLimitedError(MainmastError):
    """A rate limit or quota ran out; `retry_after` says when to come back."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | timedelta | None = None,
        quota_violations: Iterable[QuotaViolation] = (),
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, domain=domain, metadata=metadata)
        self.retry_after = _checked_retry_after(retry_after)
        self.quota_violations = _checked_violations(
            quota_violations, QuotaViolation, "quota_violations"
        )


class RequestCancelledError(MainmastError):
    """The caller cancelled the request (not `asyncio.CancelledError`, which it leaves alone)."""


class InternalError(MainmastError):
    """Something broke that the caller can do nothing about."""


class DataLossError(InternalError):
    """Data was lost or corrupted beyond recovery."""


class UnimplementedError(MainmastError):
    """The operation is not implemented or not enabled here."""


class UnavailableError(MainmastError):
    """The service or something it depends on cannot be reached now; retrying may help."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | timedelta | None = None,
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, domain=domain, metadata=metadata)
        self.retry_after = _checked_retry_after(retry_after)


class DeadlineExceededError(MainmastError):
    """The deadline passed before the operation finished."""


class _Kind(NamedTuple):
    error_class: type[MainmastError]
    grpc_code: grpc.StatusCode
    http_status: int
    default_reason: str
    title: str


# The one table. Every gRPC code but OK has exactly one class, so a status without details
# still comes back as the right class. FAILED_PRECONDITION answers 400, as google.rpc.Code
# maps it: HTTP's 412 means a failed conditional header (If-Match), not a state of the system.
# fmt: off
_TABLE: Final = (
    _Kind(MainmastError,           grpc.StatusCode.UNKNOWN,             500, "UNKNOWN",             "Unknown error"),
    _Kind(ValidationError,         grpc.StatusCode.INVALID_ARGUMENT,    400, "INVALID_ARGUMENT",    "Invalid argument"),
    _Kind(OutOfRangeError,         grpc.StatusCode.OUT_OF_RANGE,        400, "OUT_OF_RANGE",        "Out of range"),
    _Kind(FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION, 400, "FAILED_PRECONDITION", "Failed precondition"),
    _Kind(UnauthenticatedError,    grpc.StatusCode.UNAUTHENTICATED,     401, "UNAUTHENTICATED",     "Unauthenticated"),
    _Kind(PermissionDeniedError,   grpc.StatusCode.PERMISSION_DENIED,   403, "PERMISSION_DENIED",   "Permission denied"),
    _Kind(NotFoundError,           grpc.StatusCode.NOT_FOUND,           404, "NOT_FOUND",           "Not found"),
    _Kind(ConflictError,           grpc.StatusCode.ABORTED,             409, "CONFLICT",            "Conflict"),
    _Kind(AlreadyExistsError,      grpc.StatusCode.ALREADY_EXISTS,      409, "ALREADY_EXISTS",      "Already exists"),
    _Kind(RateLimitedError,        grpc.StatusCode.RESOURCE_EXHAUSTED,  429, "RATE_LIMITED",        "Rate limited"),
    _Kind(RequestCancelledError,   grpc.StatusCode.CANCELLED,           499, "CANCELLED",           "Request cancelled"),
    _Kind(InternalError,           grpc.StatusCode.INTERNAL,            500, "INTERNAL",            "Internal error"),
    _Kind(DataLossError,           grpc.StatusCode.DATA_LOSS,           500, "DATA_LOSS",           "Data loss"),
    _Kind(UnimplementedError,      grpc.StatusCode.UNIMPLEMENTED,       501, "UNIMPLEMENTED",       "Not implemented"),
    _Kind(UnavailableError,        grpc.StatusCode.UNAVAILABLE,         503, "UNAVAILABLE",         "Unavailable"),
    _Kind(DeadlineExceededError,   grpc.StatusCode.DEADLINE_EXCEEDED,   504, "DEADLINE_EXCEEDED",   "Deadline exceeded"),
)
# fmt: on


def _apply(table: tuple[_Kind, ...]) -> Mapping[grpc.StatusCode, type[MainmastError]]:
    """Give each class its row; return the class of each code."""
    for kind in table:
        error_class = kind.error_class
        error_class.grpc_code = kind.grpc_code
        error_class.http_status = kind.http_status
        error_class.default_reason = kind.default_reason
        error_class.title = kind.title
        error_class.problem_type = PROBLEM_TYPE_BASE + kind.default_reason.lower().replace("_", "-")
    return MappingProxyType({kind.grpc_code: kind.error_class for kind in table})


_CLASS_OF_CODE: Final = _apply(_TABLE)

ERROR_CLASSES: Final = tuple(kind.error_class for kind in _TABLE)
"""Every class of the table, in its order."""


def _descendants(root: type[MainmastError]) -> Iterator[type[MainmastError]]:
    seen: set[type[MainmastError]] = set()
    pending = [root]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in seen:
                seen.add(subclass)
                pending.append(subclass)
                yield subclass


def error_class_for(code: grpc.StatusCode, reason: str) -> type[MainmastError]:
    """The class a status with `code` and `reason` comes back as.

    A subclass that declares its own `default_reason` (a service's `TokenExpiredError`,
    say) is picked when the status carries that reason and its code, provided the process
    has imported it and no unrelated class claims the same pair. Otherwise the table's class
    of the code, so a built-in class comes back as itself whatever its reason.
    """
    table_class = _CLASS_OF_CODE.get(code, MainmastError)
    claimants = [
        candidate
        for candidate in _descendants(MainmastError)
        if candidate not in ERROR_CLASSES
        and "default_reason" in vars(candidate)
        and candidate.default_reason == reason
        and candidate.grpc_code is code
    ]
    most_specific = [
        candidate
        for candidate in claimants
        if not any(other is not candidate and issubclass(other, candidate) for other in claimants)
    ]
    return most_specific[0] if len(most_specific) == 1 else table_class


def concealed_internal_error() -> InternalError:
    """What an exception that is not a MainmastError becomes: INTERNAL, and nothing of it."""
    return InternalError(CONCEALED_INTERNAL_MESSAGE)
