"""The bearer token of a call's metadata."""

from __future__ import annotations

from typing import Final

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import UnauthenticatedError
from mainmast.runtime import Metadata

_BEARER: Final = "bearer "


def bearer_token(metadata: Metadata) -> str:
    """The token of the call's `authorization: Bearer <token>` metadata.

    UnauthenticatedError(CREDENTIALS_MISSING) when there is none, or the scheme is not
    Bearer (compared without regard to case, as RFC 9110 says).
    """
    for key, value in metadata:
        if key == "authorization" and isinstance(value, str):
            if value[: len(_BEARER)].lower() == _BEARER:
                token = value[len(_BEARER) :].strip()
                if token:
                    return token
            break
    raise UnauthenticatedError(
        "Send an access token as `authorization: Bearer <token>`.",
        reason=AuthErrorReason.CREDENTIALS_MISSING.value,
        domain=AUTH_ERROR_DOMAIN,
    )
