"""The config core's reasons, backend kinds and cache states match the wire contract."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mainmast.config.v1 import error_reason_pb2, resources_pb2
from mainmast.errors import (
    FailedPreconditionError,
    MainmastError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from mainmast_config._backend import BackendKind
from mainmast_config._cache import CacheState
from mainmast_config._errors import (
    CONFIG_ERROR_DOMAIN,
    ConfigErrorReason,
    backend_access_denied,
    backend_throttled,
    backend_unavailable,
    invalid_argument,
    invalid_name,
    invalid_page_token,
    secret_access_denied,
    secret_not_found,
    secret_version_not_found,
    setting_access_denied,
    too_many_names,
)


def test_every_reason_is_a_value_name_of_the_contracts_error_reason() -> None:
    names = set(error_reason_pb2.ErrorReason.keys())
    assert {reason.value for reason in ConfigErrorReason} <= names


def test_every_backend_kind_and_cache_state_is_a_value_of_the_contract() -> None:
    assert {f"BACKEND_{kind.value}" for kind in BackendKind} == set(
        resources_pb2.Backend.keys()
    ) - {"BACKEND_UNSPECIFIED"}
    assert {f"CACHE_STATE_{state.value}" for state in CacheState} == set(
        resources_pb2.CacheState.keys()
    ) - {"CACHE_STATE_UNSPECIFIED"}


@pytest.mark.parametrize(
    ("error", "error_class", "reason", "metadata"),
    [
        (secret_not_found("a/b"), NotFoundError, "SECRET_NOT_FOUND", {"name": "a/b"}),
        (
            secret_version_not_found("a", "v1"),
            NotFoundError,
            "SECRET_VERSION_NOT_FOUND",
            {"name": "a", "version": "v1"},
        ),
        (invalid_name("", "empty"), ValidationError, "INVALID_NAME", {"field": "name"}),
        (
            secret_access_denied("a/b"),
            PermissionDeniedError,
            "SECRET_ACCESS_DENIED",
            {"name": "a/b"},
        ),
        (
            setting_access_denied("s"),
            PermissionDeniedError,
            "SETTING_ACCESS_DENIED",
            {"name": "s"},
        ),
        (
            too_many_names("names", 101, 100),
            ValidationError,
            "TOO_MANY_NAMES",
            {"max_items": "100"},
        ),
        (invalid_page_token("stale"), ValidationError, "INVALID_PAGE_TOKEN", {}),
        (
            invalid_argument("page_size", "must be 0 or more"),
            ValidationError,
            "INVALID_ARGUMENT",
            {"field": "page_size"},
        ),
        (
            backend_access_denied("KEY_VAULT", "HTTP 403"),
            FailedPreconditionError,
            "BACKEND_ACCESS_DENIED",
            {"backend": "KEY_VAULT"},
        ),
        (
            backend_unavailable("FILES", "broken"),
            UnavailableError,
            "BACKEND_UNAVAILABLE",
            {"backend": "FILES"},
        ),
        (
            backend_throttled("KEY_VAULT", retry_after=3),
            UnavailableError,
            "BACKEND_THROTTLED",
            {"backend": "KEY_VAULT"},
        ),
    ],
)
def test_factories_build_the_contracts_errors(
    error: MainmastError,
    error_class: type[MainmastError],
    reason: str,
    metadata: dict[str, str],
) -> None:
    assert type(error) is error_class
    assert (error.reason, error.domain, error.metadata) == (reason, CONFIG_ERROR_DOMAIN, metadata)


def test_throttled_carries_the_retry_after_and_invalid_name_a_field_violation() -> None:
    assert backend_throttled("KEY_VAULT", retry_after=3).retry_after == timedelta(seconds=3)
    violation = invalid_name("../x", "bad segment", field="names[2]").field_violations[0]
    assert (violation.field, violation.description) == ("names[2]", "bad segment")
