"""The error taxonomy: the table, construction rules, and the status an error becomes.

The round trip over a real gRPC server is in test_errors_wire.py."""

from __future__ import annotations

import asyncio
import math
import pickle
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from mainmast import errors
from mainmast.errors import (
    AlreadyExistsError,
    ConflictError,
    DataLossError,
    DeadlineExceededError,
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
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    ValidationError,
    status_from_error,
)

# Written out here, independently of the module's own table, so a change to either shows.
EXPECTED_TABLE: list[tuple[type[MainmastError], grpc.StatusCode, int, str]] = [
    (MainmastError, grpc.StatusCode.UNKNOWN, 500, "UNKNOWN"),
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT, 400, "INVALID_ARGUMENT"),
    (OutOfRangeError, grpc.StatusCode.OUT_OF_RANGE, 400, "OUT_OF_RANGE"),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION, 400, "FAILED_PRECONDITION"),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED, 401, "UNAUTHENTICATED"),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED, 403, "PERMISSION_DENIED"),
    (NotFoundError, grpc.StatusCode.NOT_FOUND, 404, "NOT_FOUND"),
    (ConflictError, grpc.StatusCode.ABORTED, 409, "CONFLICT"),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS, 409, "ALREADY_EXISTS"),
    (RateLimitedError, grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "RATE_LIMITED"),
    (RequestCancelledError, grpc.StatusCode.CANCELLED, 499, "CANCELLED"),
    (InternalError, grpc.StatusCode.INTERNAL, 500, "INTERNAL"),
    (DataLossError, grpc.StatusCode.DATA_LOSS, 500, "DATA_LOSS"),
    (UnimplementedError, grpc.StatusCode.UNIMPLEMENTED, 501, "UNIMPLEMENTED"),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE, 503, "UNAVAILABLE"),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED, 504, "DEADLINE_EXCEEDED"),
]


def _rich(status: grpc.Status) -> status_pb2.Status:
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    return status_pb2.Status.FromString(value)


def _details(status: grpc.Status, kind: type[Any]) -> list[Any]:
    found = []
    for packed in _rich(status).details:
        detail = kind()
        if packed.Unpack(detail):
            found.append(detail)
    return found


@pytest.mark.parametrize(
    ("error_class", "code", "http_status", "reason"),
    EXPECTED_TABLE,
    ids=[row[0].__name__ for row in EXPECTED_TABLE],
)
def test_each_class_has_its_code_status_reason_and_problem_type(
    error_class: type[MainmastError], code: grpc.StatusCode, http_status: int, reason: str
) -> None:
    assert error_class.grpc_code is code
    assert error_class.http_status == http_status
    assert error_class.default_reason == reason
    assert error_class.problem_type == "https://mainmast.dev/problems/" + reason.lower().replace(
        "_", "-"
    )
    assert error_class.title
    assert error_class.__module__ == "mainmast.errors"


def test_every_grpc_code_but_ok_has_exactly_one_class() -> None:
    codes = [error_class.grpc_code for error_class in errors.ERROR_CLASSES]
    assert sorted(codes, key=lambda code: code.value[0]) == [
        code for code in grpc.StatusCode if code is not grpc.StatusCode.OK
    ]
    assert set(errors.ERROR_CLASSES) == {row[0] for row in EXPECTED_TABLE}


def test_every_class_is_a_mainmast_error_and_the_hierarchy_groups_the_409s_and_500s() -> None:
    assert all(issubclass(row[0], MainmastError) for row in EXPECTED_TABLE)
    assert issubclass(AlreadyExistsError, ConflictError)
    assert issubclass(DataLossError, InternalError)
    assert not issubclass(RequestCancelledError, asyncio.CancelledError)


def test_the_public_names_are_pinned() -> None:
    assert set(errors.__all__) == {
        "CONCEALED_INTERNAL_MESSAGE",
        "DEFAULT_DOMAIN",
        "ERROR_CLASSES",
        "PROBLEM_TYPE_BASE",
        "STATUS_BUDGET_BYTES",
        "ErrorFields",
        "FieldViolation",
        "QuotaViolation",
        "ResourceId",
        "RpcErrorTranslation",
        "error_from_rpc_error",
        "status_from_error",
        "translate_rpc_errors",
        *(row[0].__name__ for row in EXPECTED_TABLE),
    }
    assert len(errors.__all__) == len(set(errors.__all__))


def test_not_found_with_a_resource_type_and_id_says_so_in_message_and_metadata() -> None:
    error = NotFoundError("User", "42")

    assert error.message == "User '42' was not found."
    assert str(error) == error.message
    assert error.metadata == {"resource_type": "User", "resource_id": "42"}
    assert error.reason == "NOT_FOUND"
    assert error.domain == "mainmast.dev"


def test_a_resource_id_may_be_an_int_and_caller_metadata_is_kept() -> None:
    error = AlreadyExistsError("Tenant", 7, metadata={"tenant": "acme"}, domain="auth.mainmast.dev")

    assert error.message == "Tenant '7' already exists."
    assert error.metadata == {"resource_type": "Tenant", "resource_id": "7", "tenant": "acme"}
    assert error.domain == "auth.mainmast.dev"


def test_not_found_with_one_argument_takes_it_as_the_message() -> None:
    error = NotFoundError("No such thing.")

    assert error.message == "No such thing."
    assert error.metadata == {}


def test_reason_domain_and_metadata_are_kept_and_metadata_is_copied() -> None:
    given = {"tenant": "acme"}
    error = PermissionDeniedError(
        "No.", reason="TENANT_SUSPENDED", domain="auth.mainmast.dev", metadata=given
    )
    given["tenant"] = "changed"

    assert (error.reason, error.domain, error.metadata) == (
        "TENANT_SUSPENDED",
        "auth.mainmast.dev",
        {"tenant": "acme"},
    )


@pytest.mark.parametrize(
    "metadata",
    [{"count": 3}, {"flag": None}, {1: "one"}, {"raw": b"bytes"}],
    ids=["int value", "None value", "int key", "bytes value"],
)
def test_metadata_that_is_not_str_to_str_is_refused_at_construction(
    metadata: dict[Any, Any],
) -> None:
    with pytest.raises(TypeError, match="metadata"):
        NotFoundError("User", "42", metadata=metadata)


def test_metadata_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(TypeError, match="metadata"):
        InternalError("x", metadata=[("a", "b")])  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", ["not_upper", "A", "AB", "TRAILING_", "9STARTS", "X" * 64, ""])
def test_a_reason_that_is_not_upper_snake_case_is_refused(reason: str) -> None:
    with pytest.raises(ValueError, match="UPPER_SNAKE_CASE"):
        InternalError("x", reason=reason)


@pytest.mark.parametrize("domain", ["", "d" * 254])
def test_an_empty_or_overlong_domain_is_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        InternalError("x", domain=domain)


def test_a_message_that_is_not_a_str_is_refused() -> None:
    with pytest.raises(TypeError, match="message"):
        InternalError(42)  # type: ignore[arg-type]


def test_text_the_wire_cannot_carry_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        InternalError("half a pair: \ud800")
    with pytest.raises(ValueError, match="UTF-8"):
        InternalError("x", metadata={"key": "\udfff"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (2, timedelta(seconds=2)),
        (0.25, timedelta(milliseconds=250)),
        (0, timedelta(0)),
        (timedelta(minutes=1), timedelta(minutes=1)),
    ],
)
def test_retry_after_takes_seconds_or_a_timedelta(
    given: float | timedelta, expected: timedelta
) -> None:
    assert RateLimitedError("slow down", retry_after=given).retry_after == expected
    assert UnavailableError("later", retry_after=given).retry_after == expected


@pytest.mark.parametrize(
    "retry_after", [-1, math.nan, math.inf, timedelta(seconds=-1), timedelta(days=10**8)]
)
def test_a_negative_or_endless_retry_after_is_refused(retry_after: float | timedelta) -> None:
    with pytest.raises(ValueError, match="retry_after"):
        UnavailableError("later", retry_after=retry_after)


@pytest.mark.parametrize("retry_after", ["5", True])
def test_retry_after_of_another_type_is_refused(retry_after: Any) -> None:
    with pytest.raises(TypeError, match="retry_after"):
        RateLimitedError("slow down", retry_after=retry_after)


def test_violations_must_be_of_their_type() -> None:
    with pytest.raises(TypeError, match="FieldViolation"):
        ValidationError("bad", field_violations=[("name", "required")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="string"):
        ValidationError("bad", field_violations="name")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="QuotaViolation"):
        RateLimitedError("slow", quota_violations=[FieldViolation("a", "b")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="description"):
        FieldViolation("name", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="subject"):
        QuotaViolation(1, "limit")  # type: ignore[arg-type]


def test_errors_without_extras_have_none() -> None:
    error = NotFoundError("User", "42")

    assert error.retry_after is None
    assert error.field_violations == ()
    assert error.quota_violations == ()


def test_a_mainmast_error_becomes_a_status_with_exactly_one_error_info() -> None:
    status = status_from_error(
        NotFoundError("User", "42", reason="USER_NOT_FOUND", domain="auth.mainmast.dev")
    )

    assert status.code is grpc.StatusCode.NOT_FOUND
    assert status.details == "User '42' was not found."
    rich = _rich(status)
    assert rich.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert rich.message == status.details
    (info,) = _details(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("USER_NOT_FOUND", "auth.mainmast.dev")
    assert dict(info.metadata) == {"resource_type": "User", "resource_id": "42"}
    assert len(rich.details) == 1


def test_violations_and_retry_delay_travel_as_their_standard_details() -> None:
    validation = status_from_error(
        ValidationError(
            "bad",
            field_violations=[
                FieldViolation("email", "not an address", "INVALID_FORMAT"),
                FieldViolation("name", "required"),
            ],
        )
    )
    rate_limited = status_from_error(
        RateLimitedError(
            "slow down",
            retry_after=1.5,
            quota_violations=[QuotaViolation("tenant:acme", "60 requests per minute")],
        )
    )

    (bad_request,) = _details(validation, error_details_pb2.BadRequest)
    assert [(v.field, v.description, v.reason) for v in bad_request.field_violations] == [
        ("email", "not an address", "INVALID_FORMAT"),
        ("name", "required", ""),
    ]
    (retry_info,) = _details(rate_limited, error_details_pb2.RetryInfo)
    assert retry_info.retry_delay.ToTimedelta() == timedelta(seconds=1.5)
    (quota_failure,) = _details(rate_limited, error_details_pb2.QuotaFailure)
    assert [(v.subject, v.description) for v in quota_failure.violations] == [
        ("tenant:acme", "60 requests per minute")
    ]


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("password=hunter2"),
        KeyError("hunter2"),
        grpc.RpcError("hunter2"),
        asyncio.CancelledError("hunter2"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_anything_else_becomes_a_generic_internal_status_with_none_of_its_text(
    exc: BaseException,
) -> None:
    status = status_from_error(exc)

    assert status.code is grpc.StatusCode.INTERNAL
    assert status.details == "Internal error."
    (info,) = _details(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == ("INTERNAL", "mainmast.dev", {})
    sent = repr(status.details).encode() + status.trailing_metadata[0][1]
    assert b"hunter2" not in sent
    assert type(exc).__name__.encode() not in sent


@pytest.mark.parametrize(
    "error",
    [
        NotFoundError("User", "42", domain="auth.mainmast.dev"),
        ValidationError("bad", field_violations=[FieldViolation("name", "required", "MISSING")]),
        RateLimitedError(
            "slow", retry_after=3, quota_violations=[QuotaViolation("tenant:acme", "60/min")]
        ),
        UnavailableError("later", retry_after=timedelta(milliseconds=1500), reason="DB_DOWN"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_error_pickles_with_everything_it_carries(error: MainmastError) -> None:
    restored = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made

    assert type(restored) is type(error)
    assert restored.fields() == error.fields()
    assert str(restored) == str(error)


def test_a_subclass_may_declare_its_own_reason_and_domain() -> None:
    class TokenExpiredError(UnauthenticatedError):
        default_reason = "TOKEN_EXPIRED"
        default_domain = "auth.mainmast.dev"

    error = TokenExpiredError("The token expired.")

    assert (error.reason, error.domain) == ("TOKEN_EXPIRED", "auth.mainmast.dev")
    assert TokenExpiredError.grpc_code is grpc.StatusCode.UNAUTHENTICATED
    assert TokenExpiredError.http_status == 401
