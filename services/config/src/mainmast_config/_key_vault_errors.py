"""The one place where the Azure SDK's errors become the taxonomy's.

- ResourceNotFoundError (404): SECRET_NOT_FOUND, or SECRET_VERSION_NOT_FOUND when a
  version was asked for;
- ClientAuthenticationError, 401, 403: BACKEND_ACCESS_DENIED;
- 429: BACKEND_THROTTLED, with the Retry-After;
- any other HTTP status, or a body that does not decode: BACKEND_UNAVAILABLE, with the
  Retry-After if there is one;
- ServiceRequestError, ServiceResponseError (connection trouble) and TimeoutError (the
  backend's own deadline): BACKEND_UNAVAILABLE.

No message built here repeats the SDK's message or a response body: they may quote
request details, and they are of no use to a caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from ._backend import BackendKind
from ._errors import (
    backend_access_denied,
    backend_throttled,
    backend_unavailable,
    secret_not_found,
    secret_version_not_found,
)

_BACKEND: Final = BackendKind.KEY_VAULT
_TOO_MANY_REQUESTS: Final = 429
_MAX_RETRY_AFTER_SECONDS: Final = 86_400.0  # a day: past that a header is nonsense


@contextmanager
def translate_key_vault_errors(
    name: str | None = None, version: str | None = None, *, now: datetime | None = None
) -> Iterator[None]:
    """Turn Azure SDK errors raised inside into the taxonomy's, `raise ... from exc`.

    `name` and `version` say what was read (None while listing); `now` is for reading a
    Retry-After given as an HTTP date.
    """
    try:
        yield
    except ResourceNotFoundError as exc:
        if name is None:
            raise backend_unavailable(_BACKEND, "the vault answered 404 to a listing") from exc
        if version:
            raise secret_version_not_found(name, version) from exc
        raise secret_not_found(name) from exc
    except ClientAuthenticationError as exc:
        raise backend_access_denied(_BACKEND, "authentication failed") from exc
    except HttpResponseError as exc:
        status = exc.status_code
        retry_after = _retry_after(exc, now)
        if status in (401, 403):
            raise backend_access_denied(_BACKEND, f"HTTP {status}") from exc
        if status == _TOO_MANY_REQUESTS:
            raise backend_throttled(_BACKEND, retry_after=retry_after) from exc
        detail = f"HTTP {status}" if status else "the response could not be read"
        raise backend_unavailable(_BACKEND, detail, retry_after=retry_after) from exc
    except ServiceRequestError as exc:
        raise backend_unavailable(_BACKEND, "the vault could not be reached") from exc
    except ServiceResponseError as exc:
        raise backend_unavailable(_BACKEND, "the vault did not answer") from exc
    except TimeoutError as exc:
        raise backend_unavailable(_BACKEND, "the vault did not answer in time") from exc


def _retry_after(exc: HttpResponseError, now: datetime | None) -> float | None:
    # The SDK types the response loosely; every transport's response has `headers`.
    headers = getattr(exc.response, "headers", None)
    if not isinstance(headers, Mapping):
        return None
    return parse_retry_after(headers, now=now)


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date) or `retry-after-ms`, or
    None when no header says, or says nothing sensible."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for header, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0)):
        if header in lowered:
            return _bounded(_number(lowered[header]), scale)
    text = lowered.get("retry-after")
    if text is None:
        return None
    seconds = _number(text)
    if seconds is not None:
        return _bounded(seconds, 1.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _bounded((when - (now or datetime.now(UTC))).total_seconds(), 1.0)


def _number(text: str) -> float | None:
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _bounded(value: float | None, scale: float) -> float | None:
    if value is None:
        return None
    return min(max(value / scale, 0.0), _MAX_RETRY_AFTER_SECONDS)
