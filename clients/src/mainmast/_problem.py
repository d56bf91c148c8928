"""A MainmastError as an RFC 9457 problem: the body and the headers of the HTTP answer.

Framework-free, so every HTTP adapter answers the same document.
"""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from typing import Any, Final

from mainmast._error_types import MainmastError, UnauthenticatedError

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

_ONE_SECOND: Final = timedelta(seconds=1)

# The reasons of `mainmast.auth.AuthErrorReason` for a presented token that was refused all
# begin so (TOKEN_EXPIRED, TOKEN_REVOKED, ...); matched by prefix, since this module stays
# free of the auth package.
_REFUSED_TOKEN_REASON_PREFIX: Final = "TOKEN_"  # noqa: S105 -- a reason prefix, not a secret


def problem_details(error: MainmastError) -> dict[str, Any]:
    """The problem+json document for `error`.

    `type`, `title` and `status` come from the error's class (one problem type per row of
    the taxonomy), `detail` is its message; the extension members `reason`, `domain` and
    `metadata` always appear, `errors` (field violations) and `quota_violations` when there
    are any.
    """
    error_class = type(error)
    document: dict[str, Any] = {
        "type": error_class.problem_type,
        "title": error_class.title,
        "status": error_class.http_status,
        "detail": error.message,
        "reason": error.reason,
        "domain": error.domain,
        "metadata": dict(error.metadata),
    }
    if error.field_violations:
        document["errors"] = [
            {"field": violation.field, "description": violation.description}
            | ({"reason": violation.reason} if violation.reason else {})
            for violation in error.field_violations
        ]
    if error.quota_violations:
        document["quota_violations"] = [
            {"subject": violation.subject, "description": violation.description}
            for violation in error.quota_violations
        ]
    return document


def http_status_problem_details(status: int, detail: str | None = None) -> dict[str, Any]:
    """The problem+json document for an HTTP status that no MainmastError raised.

    This is the answer of the framework itself (no such route, method not allowed) or of an
    `HTTPException` raised by application code: RFC 9457's `about:blank` type, the status's
    phrase as title, and the same `reason` and `domain` members as every other problem, so a
    client reads one shape whatever answered.
    """
    try:
        known = HTTPStatus(status)
    except ValueError:
        title, reason = "Error", "HTTP_ERROR"
    else:
        title, reason = known.phrase, known.name
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail if detail is not None else title,
        "reason": reason,
        "domain": MainmastError.default_domain,
        "metadata": {},
    }


def retry_after_seconds(delay: timedelta) -> int:
    """`delay` in whole seconds, rounded up, as the Retry-After header wants it."""
    return -(-delay // _ONE_SECOND)


def problem_headers(error: MainmastError) -> dict[str, str]:
    """The headers that go with the problem: Retry-After, and the challenge of a 401."""
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(retry_after_seconds(error.retry_after))
    if isinstance(error, UnauthenticatedError):
        headers["WWW-Authenticate"] = bearer_challenge(error)
    return headers


def bearer_challenge(error: UnauthenticatedError) -> str:
    """The `WWW-Authenticate` challenge of a 401: RFC 9110 wants one, and mainmast
    authenticates with bearer tokens (RFC 6750).

    A token that was presented and refused (expired, revoked, badly signed: the auth
    reasons that begin with `TOKEN_`) gets `error="invalid_token"`, which tells an OAuth
    client to get a new token rather than ask its user again; a request without
    credentials gets the bare challenge, as RFC 6750 section 3.1 says.
    """
    if error.reason.startswith(_REFUSED_TOKEN_REASON_PREFIX):
        return 'Bearer error="invalid_token"'
    return "Bearer"
