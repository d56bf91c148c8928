"""ListSecrets page tokens: they carry where the next page starts and the prefix of the call
that made them, and anything else is refused as INVALID_PAGE_TOKEN."""

from __future__ import annotations

import base64

import pytest

from mainmast.errors import ValidationError
from mainmast_config._page_tokens import page_start, page_token


def test_a_token_says_where_the_next_page_starts() -> None:
    token = page_token("payments/stripe-key", "payments/")

    assert page_start(token, "payments/") == "payments/stripe-key"
    assert page_start("", "payments/") is None
    assert "=" not in token


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'["a list"]').decode(),
        base64.urlsafe_b64encode(b'{"v": 2, "after": "a", "prefix": ""}').decode(),
        base64.urlsafe_b64encode(b'{"v": 1, "after": 3, "prefix": ""}').decode(),
    ],
    ids=["garbage", "not-json", "not-an-object", "other-version", "wrong-field-type"],
)
def test_a_token_this_service_did_not_make_is_refused(token: str) -> None:
    with pytest.raises(ValidationError) as raised:
        page_start(token, "")

    assert raised.value.reason == "INVALID_PAGE_TOKEN"
    assert raised.value.field_violations[0].field == "page_token"


def test_a_token_of_a_listing_with_another_prefix_is_refused() -> None:
    with pytest.raises(ValidationError, match="another name_prefix"):
        page_start(page_token("orders/db", "orders/"), "payments/")
