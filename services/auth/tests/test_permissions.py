"""Permission strings: the "resource:action" grammar and what a granted permission implies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mainmast.auth import AuthErrorReason
from mainmast.errors import ValidationError
from mainmast_auth._permissions import Permission


@pytest.mark.parametrize(
    ("text", "resource", "action"),
    [
        ("users:read", "users", "read"),
        ("users:*", "users", "*"),
        ("*:read", "*", "read"),
        ("*:*", "*", "*"),
        ("service-accounts:disable", "service-accounts", "disable"),
        ("billing.invoices:approve", "billing.invoices", "approve"),
        ("a" * 63 + ":" + "b" * 63, "a" * 63, "b" * 63),
    ],
)
def test_well_formed_permissions_parse(text: str, resource: str, action: str) -> None:
    permission = Permission.parse(text)
    assert (permission.resource, permission.action) == (resource, action)
    assert str(permission) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "users",
        "users:",
        ":read",
        "users:read:extra",
        "Users:read",
        "users:READ",
        "us*rs:read",
        "users:re ad",
        "users :read",
        "1users:read",
        "-users:read",
        "users.:read",
        ".users:read",
        "users..all:read",
        "**:read",
        "users,read",
        "users:read\n",
        "a" * 64 + ":read",
    ],
)
def test_malformed_permissions_are_validation_errors(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Permission.parse(text)
    assert caught.value.reason == AuthErrorReason.INVALID_PERMISSION.value
    assert caught.value.metadata == {"permission": text}


_SIDES = st.sampled_from(["users", "invoices", "billing.invoices", "*"])


@given(granted=st.tuples(_SIDES, _SIDES), requested=st.tuples(_SIDES, _SIDES))
def test_implication_is_sidewise_wildcard_or_equality(
    granted: tuple[str, str], requested: tuple[str, str]
) -> None:
    holds = Permission(*granted).implies(Permission(*requested))
    sidewise = all(g in ("*", r) for g, r in zip(granted, requested, strict=True))
    assert holds == sidewise
    assert Permission(*granted).implies(Permission(*granted))
