"""One classification of provider failures into mainmast.errors, with `retryable`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import grpc
import httpx
import orjson
import pytest
from google.rpc import error_details_pb2, status_pb2

from mainmast.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
    status_from_error,
)
from mainmast_llm._completion import ProviderKind
from mainmast_llm._provider_errors import (
    FailureKind,
    ProviderRateLimitedError,
    connection_error,
    error_for_http_status,
    is_retryable,
    malformed_response_error,
    retry_after_seconds,
    timeout_error,
)

KEY = "sk-live-0123456789abcdef0123"


def classify(status: int, headers=None, body=b""):
    return error_for_http_status(
        ProviderKind.OPENAI, status, httpx.Headers(headers or {}), body, secrets=(KEY,)
    )


@pytest.mark.parametrize(
    ("status", "base_class", "kind", "retryable"),
    [
        (400, ValidationError, FailureKind.REJECTED, False),
        (404, ValidationError, FailureKind.REJECTED, False),
        (413, ValidationError, FailureKind.REJECTED, False),
        (401, FailedPreconditionError, FailureKind.AUTHENTICATION_FAILED, False),
        (403, FailedPreconditionError, FailureKind.AUTHENTICATION_FAILED, False),
        (408, DeadlineExceededError, FailureKind.TIMED_OUT, True),
        (429, RateLimitedError, FailureKind.RATE_LIMITED, True),
        (500, UnavailableError, FailureKind.SERVER_ERROR, True),
        (503, UnavailableError, FailureKind.SERVER_ERROR, True),
        (529, UnavailableError, FailureKind.SERVER_ERROR, True),
        (302, UnavailableError, FailureKind.MALFORMED_RESPONSE, True),
    ],
)
def test_each_status_has_one_class_kind_and_retryability(status, base_class, kind, retryable):
    error = classify(status)

    assert isinstance(error, base_class)
    assert error.kind is kind
    assert error.retryable is retryable
    assert is_retryable(error) is retryable
    assert error.upstream_http_status == status
    assert error.domain == "llm.mainmast.dev"
    assert error.metadata == {"provider": "openai", "upstream_http_status": str(status)}


def test_transport_failures_are_retryable():
    assert connection_error(ProviderKind.GEMINI).kind is FailureKind.CONNECTION_FAILED
    assert timeout_error(ProviderKind.GEMINI).kind is FailureKind.TIMED_OUT
    malformed = malformed_response_error(ProviderKind.GEMINI, "no candidates")
    assert malformed.kind is FailureKind.MALFORMED_RESPONSE
    assert all(
        is_retryable(error)
        for error in (connection_error(ProviderKind.DEV), timeout_error(ProviderKind.DEV))
    )


def test_errors_that_are_not_provider_failures_are_not_retryable():
    assert not is_retryable(UnavailableError("database down"))
    assert not is_retryable(NotFoundError("Model", "gpt-9"))
    assert not is_retryable(RuntimeError("bug"))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "nonsense", "retry-after": "3"}, 3.0),
        ({"retry-after": "-4"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_comes_from_the_providers_headers(headers, expected):
    assert retry_after_seconds(httpx.Headers(headers)) == expected


def test_retry_after_may_be_an_http_date():
    when = datetime.now(UTC) + timedelta(seconds=90)

    seconds = retry_after_seconds(httpx.Headers({"retry-after": format_datetime(when, True)}))

    assert seconds is not None
    assert 0 < seconds <= 90


def test_a_past_http_date_means_retry_now():
    past = format_datetime(datetime(2001, 1, 1, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(httpx.Headers({"retry-after": past})) == 0.0


def test_a_rejected_requests_detail_is_kept_but_scrubbed_of_the_key():
    body = orjson.dumps({"error": {"message": f"bad key {KEY} for max_tokens"}})

    error = classify(400, body=body)

    assert (
        error.message
        == "The openai provider rejected the request (HTTP 400): bad key *** for max_tokens"
    )


def test_an_authentication_failure_leaves_the_body_out():
    body = orjson.dumps({"error": {"message": "Incorrect API key sk-live-0123...0123"}})

    error = classify(401, body=body)

    assert "sk-live" not in error.message


def test_ollamas_string_errors_and_garbage_bodies_are_understood():
    assert "boom" in classify(500, body=b'{"error": "boom"}').message
    assert classify(500, body=b"<html>").message == "The openai provider failed (HTTP 500)."


def test_the_reason_reaches_the_wire_with_its_retry_info():
    error = classify(429, headers={"retry-after": "7"})

    status = status_from_error(error)

    assert status.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    rich = status_pb2.Status.FromString(details)
    infos = [d for d in rich.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    retry = [d for d in rich.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert (info.reason, info.domain) == ("PROVIDER_RATE_LIMITED", "llm.mainmast.dev")
    assert len(retry) == 1
    assert isinstance(error, ProviderRateLimitedError)


def test_an_error_rebuilt_from_the_wire_keeps_its_kind():
    rebuilt = ProviderRateLimitedError.__new__(ProviderRateLimitedError)

    assert rebuilt.kind is FailureKind.RATE_LIMITED
    assert rebuilt.retryable
    assert rebuilt.upstream_http_status == 0
