"""AIP-158 pagination for the admin listings: page sizes and opaque page tokens.

A page token carries the key of the last item returned and the request's filter fields;
a token presented with other filters, or one that was tampered with, is refused with a
ValidationError rather than silently listing something else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Final

import orjson

from mainmast.errors import FieldViolation, ValidationError

from ._store_common import MAX_PAGE_SIZE

DEFAULT_PAGE_SIZE: Final = 50
"""The page size of a request that asks for 0."""


def page_size(requested: int) -> int:
    """0 means DEFAULT_PAGE_SIZE, more than MAX_PAGE_SIZE means MAX_PAGE_SIZE; negative fails."""
    if requested < 0:
        description = f"page_size must not be negative, got {requested}."
        raise ValidationError(
            description, field_violations=[FieldViolation("page_size", description)]
        )
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _invalid_token() -> ValidationError:
    description = "page_token is not a token of a previous call with the same fields."
    return ValidationError(
        description, field_violations=[FieldViolation("page_token", description)]
    )


def encode_page_token(filters: Sequence[str], after: Sequence[str]) -> str:
    """The token of the page after the item with key `after`, for a request with `filters`."""
    document = orjson.dumps({"f": list(filters), "a": list(after)})
    return base64.urlsafe_b64encode(document).decode().rstrip("=")


def decode_page_token(token: str, filters: Sequence[str], *, parts: int = 1) -> list[str] | None:
    """The `after` key of `token`, `parts` strings (None for the first page); ValidationError
    if it does not belong to a request with these `filters`."""
    if not token:
        return None
    try:
        document = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise _invalid_token() from exc
    if not isinstance(document, dict) or document.get("f") != list(filters):
        raise _invalid_token()
    after = document.get("a")
    if (
        not isinstance(after, list)
        or len(after) != parts
        or not all(isinstance(part, str) for part in after)
    ):
        raise _invalid_token()
    return [str(part) for part in after]
