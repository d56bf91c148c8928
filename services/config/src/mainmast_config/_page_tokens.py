"""ListSecrets page tokens (AIP-158): where the next page starts, bound to the call's prefix.

A token carries the last name of the page it follows and the `name_prefix` of the call that
made it, base64url-encoded JSON. It reveals nothing the caller was not shown: the name in it
was on the caller's own page, and the next page is filtered for the caller again, so a
forged token lists nothing the caller may not read.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import orjson

from ._errors import invalid_page_token

_VERSION: Final = 1


def page_token(last_name: str, name_prefix: str) -> str:
    """The token of the page after the one that ended with `last_name`."""
    document = {"v": _VERSION, "after": last_name, "prefix": name_prefix}
    return base64.urlsafe_b64encode(orjson.dumps(document)).decode().rstrip("=")


def page_start(token: str, name_prefix: str) -> str | None:
    """The name the page of `token` starts after (None for the first page).

    ValidationError (INVALID_PAGE_TOKEN) for a token this service did not make, or one made
    for another `name_prefix`.
    """
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        document = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise invalid_page_token("it is not a token this service gave") from None
    if (
        not isinstance(document, dict)
        or document.get("v") != _VERSION
        or not isinstance(document.get("after"), str)
        or not isinstance(document.get("prefix"), str)
    ):
        raise invalid_page_token("it is not a token this service gave")
    if document["prefix"] != name_prefix:
        raise invalid_page_token("it belongs to a listing with another name_prefix")
    after: str = document["after"]
    return after
