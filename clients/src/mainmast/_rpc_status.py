"""Errors across the gRPC wire: a MainmastError as a rich `google.rpc.Status`, and back.

The status travels in trailing metadata (`grpc-status-details-bin`, next to the plain
code and message), and gRPC clients reject trailers above 8 KiB by default: not with the
server's status but with RESOURCE_EXHAUSTED. So a status is kept within a budget. What
identifies the error (code, reason, domain) always goes; a very long message is shortened,
then field violations, quota violations and metadata entries are left out from the end,
and the message says that details were left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Final, Self, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2, message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from mainmast._error_types import (
    ErrorFields,
    FieldViolation,
    MainmastError,
    QuotaViolation,
    concealed_internal_error,
    error_class_for,
    restore_error,
)

DETAILS_METADATA_KEY: Final = "grpc-status-details-bin"
"""The trailing metadata key that carries the serialized google.rpc.Status."""

STATUS_BUDGET_BYTES: Final = 7 * 1024
"""The most a status may take in trailers: its message as gRPC sends it plus the serialized
google.rpc.Status. gRPC's default limit for all received metadata is 8 KiB."""

MESSAGE_BUDGET_BYTES: Final = 1536
"""The most a message may take as gRPC sends it (percent-encoded) before it is shortened."""

TRUNCATED_MESSAGE_SUFFIX: Final = "..."
DETAILS_LEFT_OUT_SUFFIX: Final = " [some error details were left out]"

_DetailT = TypeVar("_DetailT", bound=message.Message)

# gRPC percent-encodes the message: every byte outside printable ASCII, and "%", takes 3.
_SENT_AS_IS: Final = bytes(byte for byte in range(0x20, 0x7F) if byte != ord("%"))


def _sent_size(text: str) -> int:
    """The size of `text` as gRPC sends it in the `grpc-message` trailer."""
    raw = text.encode("utf-8")
    return len(raw) + 2 * len(raw.translate(None, _SENT_AS_IS))


def _shortened(text: str, budget: int) -> str:
    """`text` cut, with a marker, so that it takes at most `budget` bytes as sent."""
    if _sent_size(text) <= budget:
        return text
    room = budget - _sent_size(TRUNCATED_MESSAGE_SUFFIX)
    kept = text[:room]
    while (size := _sent_size(kept)) > room:
        # Shrinks strictly while too big; a character costs at most 12 bytes as sent.
        kept = kept[: len(kept) * room // size]
    return kept + TRUNCATED_MESSAGE_SUFFIX


def _packed(detail: message.Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def _rich_status(code: grpc.StatusCode, fields: ErrorFields) -> status_pb2.Status:
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=fields.reason, domain=fields.domain, metadata=fields.metadata
            )
        )
    ]
    if fields.field_violations:
        details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=violation.field,
                            description=violation.description,
                            reason=violation.reason,
                        )
                        for violation in fields.field_violations
                    ]
                )
            )
        )
    if fields.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(fields.retry_after)
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    if fields.quota_violations:
        details.append(
            _packed(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=violation.subject, description=violation.description
                        )
                        for violation in fields.quota_violations
                    ]
                )
            )
        )
    return status_pb2.Status(code=code.value[0], message=fields.message, details=details)


def _status_size(status: status_pb2.Status) -> int:
    serialized_size: int = status.ByteSize()
    return _sent_size(status.message) + serialized_size


def _within_budget(code: grpc.StatusCode, fields: ErrorFields) -> status_pb2.Status:
    """The rich status of `fields`, left out from where needed to fit STATUS_BUDGET_BYTES."""
    fields = ErrorFields(
        message=_shortened(fields.message, MESSAGE_BUDGET_BYTES),
        reason=fields.reason,
        domain=fields.domain,
        metadata=fields.metadata,
        retry_after=fields.retry_after,
        field_violations=fields.field_violations,
        quota_violations=fields.quota_violations,
    )
    status = _rich_status(code, fields)
    if _status_size(status) <= STATUS_BUDGET_BYTES:
        return status
    # What may be left out, the last first: the metadata holds the message's dynamic parts
    # (which resource, which limit), so it is the last to go.
    entries = list(fields.metadata.items())
    optional: list[tuple[str, str] | FieldViolation | QuotaViolation] = [
        *entries,
        *fields.quota_violations,
        *fields.field_violations,
    ]

    def keeping(count: int) -> status_pb2.Status:
        kept = optional[:count]
        return _rich_status(
            code,
            ErrorFields(
                message=fields.message + DETAILS_LEFT_OUT_SUFFIX,
                reason=fields.reason,
                domain=fields.domain,
                metadata=dict(item for item in kept if isinstance(item, tuple)),
                retry_after=fields.retry_after,
                field_violations=tuple(i for i in kept if isinstance(i, FieldViolation)),
                quota_violations=tuple(i for i in kept if isinstance(i, QuotaViolation)),
            ),
        )

    # The size grows with every item kept: find the most that fit.
    fitting, too_many = 0, len(optional)
    while too_many - fitting > 1:
        middle = (fitting + too_many) // 2
        if _status_size(keeping(middle)) <= STATUS_BUDGET_BYTES:
            fitting = middle
        else:
            too_many = middle
    return keeping(fitting)


def status_from_error(exc: BaseException) -> grpc.Status:
    """The gRPC status a servicer answers for `exc`.

    A MainmastError becomes a google.rpc.Status with its code and message and exactly one
    ErrorInfo (reason, domain, metadata), plus BadRequest, RetryInfo and QuotaFailure when
    it has field violations, a retry delay or quota violations. Anything else becomes
    INTERNAL with a generic message and reason INTERNAL: nothing of it reaches the caller.
    """
    error = exc if isinstance(exc, MainmastError) else concealed_internal_error()
    return rpc_status.to_status(_within_budget(type(error).grpc_code, error.fields()))


def _code_of(error: grpc.RpcError) -> grpc.StatusCode:
    # A bare grpc.RpcError is not a grpc.Call and has no code.
    code_method = getattr(error, "code", None)
    code = code_method() if callable(code_method) else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _text_of(error: grpc.RpcError) -> str:
    details_method = getattr(error, "details", None)
    details = details_method() if callable(details_method) else None
    return details if isinstance(details, str) else ""


def _rich_status_of(error: grpc.RpcError, code: grpc.StatusCode) -> status_pb2.Status | None:
    """The google.rpc.Status in the error's trailers, if there is one that fits its code.

    Works for grpc.aio errors, whose trailers grpc_status.rpc_status.from_call does not
    read, and for sync ones. Details that do not parse, or whose code differs from the
    call's (something on the way rewrote the status), are ignored: the call's code wins.
    """
    trailers_method = getattr(error, "trailing_metadata", None)
    trailers = trailers_method() if callable(trailers_method) else None
    for key, value in trailers or ():
        if key != DETAILS_METADATA_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except message.DecodeError:
            return None
        return status if status.code == code.value[0] else None
    return None


def _unpacked(details: Iterable[any_pb2.Any], kind: type[_DetailT]) -> list[_DetailT]:
    found: list[_DetailT] = []
    for packed in details:
        detail = kind()
        if packed.Unpack(detail):  # False when the Any holds another type
            found.append(detail)
    return found


def _retry_after(infos: Sequence[error_details_pb2.RetryInfo]) -> timedelta | None:
    if not infos or not infos[0].HasField("retry_delay"):
        return None
    delay: timedelta = infos[0].retry_delay.ToTimedelta()
    return max(timedelta(0), delay)


def error_from_rpc_error(err: grpc.RpcError) -> MainmastError:
    """The MainmastError a failed call stands for, from its rich status when it has one.

    The class comes from the code (and the reason, for a subclass that declares its own);
    message, reason, domain, metadata, field and quota violations and retry delay come from
    the google.rpc.Status. A status without details (UNAVAILABLE from a server that is not
    there, DEADLINE_EXCEEDED from the caller's own deadline) gives the class of its code
    with the call's message and the class's default reason and domain.
    """
    code = _code_of(err)
    status = _rich_status_of(err, code)
    if status is None:
        error_class = error_class_for(code, "")
        return restore_error(
            error_class,
            ErrorFields(
                message=_text_of(err),
                reason=error_class.default_reason,
                domain=error_class.default_domain,
            ),
        )
    infos = _unpacked(status.details, error_details_pb2.ErrorInfo)
    info = infos[0] if infos else error_details_pb2.ErrorInfo()
    error_class = error_class_for(code, info.reason)
    return restore_error(
        error_class,
        ErrorFields(
            message=status.message,
            reason=info.reason or error_class.default_reason,
            domain=info.domain or error_class.default_domain,
            metadata=dict(info.metadata),
            retry_after=_retry_after(_unpacked(status.details, error_details_pb2.RetryInfo)),
            field_violations=tuple(
                FieldViolation(
                    field=violation.field,
                    description=violation.description,
                    reason=violation.reason,
                )
                for request in _unpacked(status.details, error_details_pb2.BadRequest)
                for violation in request.field_violations
            ),
            quota_violations=tuple(
                QuotaViolation(subject=violation.subject, description=violation.description)
                for failure in _unpacked(status.details, error_details_pb2.QuotaFailure)
                for violation in failure.violations
            ),
        ),
    )


class RpcErrorTranslation:
    """Turns a grpc.RpcError raised in its block into the matching MainmastError.

    Works with `with` and `async with`; the MainmastError is raised from the RpcError, so
    the original stays in the traceback. Everything else passes through.
    """

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, grpc.RpcError):
            raise error_from_rpc_error(exc) from exc

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)


def translate_rpc_errors() -> RpcErrorTranslation:
    """The one place foreign gRPC errors become mainmast errors.

    ::

        async with translate_rpc_errors():
            reply = await stub.GetUser(request)   # NOT_FOUND raises NotFoundError
    """
    return RpcErrorTranslation()
