"""One error taxonomy for Python, gRPC and HTTP.

Raise the class that says what happened; the server interceptor
(`mainmast.runtime.ErrorInterceptor`) answers it as a rich gRPC status, the client turns
that status back into the same class (`translate_rpc_errors`), and the FastAPI handler
(`mainmast.fastapi.install_error_handlers`) answers it as RFC 9457 problem+json::

    raise NotFoundError("User", user_id)     # NOT_FOUND / 404, "User '42' was not found."

The hierarchy, with each class's gRPC code, HTTP status and default reason::

    MainmastError                       UNKNOWN              500  UNKNOWN
    ├── ValidationError                 INVALID_ARGUMENT     400  INVALID_ARGUMENT
    ├── OutOfRangeError                 OUT_OF_RANGE         400  OUT_OF_RANGE
    ├── FailedPreconditionError         FAILED_PRECONDITION  400  FAILED_PRECONDITION
    ├── UnauthenticatedError            UNAUTHENTICATED      401  UNAUTHENTICATED
    ├── PermissionDeniedError           PERMISSION_DENIED    403  PERMISSION_DENIED
    ├── NotFoundError                   NOT_FOUND            404  NOT_FOUND
    ├── ConflictError                   ABORTED              409  CONFLICT
    │   └── AlreadyExistsError          ALREADY_EXISTS       409  ALREADY_EXISTS
    ├── RateLimitedError                RESOURCE_EXHAUSTED   429  RATE_LIMITED
    ├── RequestCancelledError           CANCELLED            499  CANCELLED
    ├── InternalError                   INTERNAL             500  INTERNAL
    │   └── DataLossError               DATA_LOSS            500  DATA_LOSS
    ├── UnimplementedError              UNIMPLEMENTED        501  UNIMPLEMENTED
    ├── UnavailableError                UNAVAILABLE          503  UNAVAILABLE
    └── DeadlineExceededError           DEADLINE_EXCEEDED    504  DEADLINE_EXCEEDED

Every gRPC code has one class, so even a status without details (UNAVAILABLE from a
server that is down) comes back as the right class. FAILED_PRECONDITION is 400, as
google.rpc.Code maps it: HTTP's 412 is about conditional request headers. The client's
cancellation is `RequestCancelledError`, so `asyncio.CancelledError` keeps its meaning.

Every error has `message` (for humans), `reason` (UPPER_SNAKE_CASE, the class's default
unless given) and `domain` (`"mainmast.dev"` unless given; services pass their own, such as
`"auth.mainmast.dev"`), which programs branch on, and `metadata`, the dynamic parts of the
message as strings. ValidationError adds `field_violations`; RateLimitedError adds
`retry_after` and `quota_violations`; UnavailableError adds `retry_after`. Arguments the
wire cannot carry (a metadata value that is not a str, a lowercase reason) are rejected
when the error is made, not when it is sent.

gRPC clients refuse trailers above 8 KiB, so a status is held to `STATUS_BUDGET_BYTES`:
code, reason and domain always arrive; past the budget a long message is shortened and
violations, then metadata entries, are left out from the end, which the message says.

A service may subclass a class for a case of its own; when the subclass declares its own
`default_reason`, a client that imports it gets it back from the wire::

    class TokenExpiredError(UnauthenticatedError):
        default_reason = "TOKEN_EXPIRED"
        default_domain = "auth.mainmast.dev"
"""

from mainmast._error_types import (
    CONCEALED_INTERNAL_MESSAGE,
    DEFAULT_DOMAIN,
    ERROR_CLASSES,
    PROBLEM_TYPE_BASE,
    AlreadyExistsError,
    ConflictError,
    DataLossError,
    DeadlineExceededError,
    ErrorFields,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    MainmastError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    QuotaViolation,
    RateLimitedError,
    RequestCancelledError,
    ResourceId,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    ValidationError,
)
from mainmast._rpc_status import (
    STATUS_BUDGET_BYTES,
    RpcErrorTranslation,
    error_from_rpc_error,
    status_from_error,
    translate_rpc_errors,
)

__all__ = [
    "CONCEALED_INTERNAL_MESSAGE",
    "DEFAULT_DOMAIN",
    "ERROR_CLASSES",
    "PROBLEM_TYPE_BASE",
    "STATUS_BUDGET_BYTES",
    "AlreadyExistsError",
    "ConflictError",
    "DataLossError",
    "DeadlineExceededError",
    "ErrorFields",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "MainmastError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "QuotaViolation",
    "RateLimitedError",
    "RequestCancelledError",
    "ResourceId",
    "RpcErrorTranslation",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "ValidationError",
    "error_from_rpc_error",
    "status_from_error",
    "translate_rpc_errors",
]


def _present_classes_as_public() -> None:
    # Tracebacks and reprs name a class by its module: users import these from here, not
    # from the private modules that define them (httpx does the same).
    for name in __all__:
        exported = globals()[name]
        if isinstance(exported, type):
            exported.__module__ = __name__


_present_classes_as_public()
