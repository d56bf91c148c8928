"""The auth error reasons used in Python are the contract's, and the domain is a valid one."""

from __future__ import annotations

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.auth.v1 import error_reason_pb2
from mainmast.errors import UnauthenticatedError


def test_every_reason_is_a_value_name_of_the_contracts_error_reason_enum() -> None:
    contract = set(error_reason_pb2.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
    for reason in AuthErrorReason:
        assert reason.value == reason.name
        assert reason.value in contract, f"{reason} is not in error_reason.proto"


def test_the_domain_and_every_reason_make_a_valid_error() -> None:
    for reason in AuthErrorReason:
        error = UnauthenticatedError("x", reason=reason.value, domain=AUTH_ERROR_DOMAIN)
        assert (error.reason, error.domain) == (reason.value, "auth.mainmast.dev")
