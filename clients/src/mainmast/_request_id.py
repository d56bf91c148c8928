"""Request ids: the one rule for accepting a caller's id, shared by HTTP and gRPC."""

from __future__ import annotations

import re
import uuid
from typing import Final

REQUEST_ID_HEADER: Final = "X-Request-ID"
"""The HTTP header that carries a request id, in both directions."""

# A request id comes from the caller, so it is only trusted when it looks like one:
# anything else (too long, control characters, ...) would end up in every log line.
# The gRPC runtime accepts the same ids, so one id follows a request across both.
_ACCEPTABLE_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def accepted_request_id(candidate: str | None) -> str:
    """`candidate` when it is an acceptable request id, otherwise a new one."""
    if candidate is not None and _ACCEPTABLE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex
