"""Strict reading of a compact JWS (RFC 7515 section 7.1): three base64url segments.

Strict means: no padding, only the base64url alphabet, and the canonical encoding only
(the unused low bits of the last character are zero). Without the last rule one signature
has several spellings, and a token could be altered without breaking its signature.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

_BASE64URL: Final = re.compile(rb"[A-Za-z0-9_-]*")


class CompactJwsError(ValueError):
    """The text is not a well-formed compact JWS; the message says which part is wrong."""


def decode_segment(segment: bytes, part: str) -> bytes:
    """Decode one unpadded base64url segment, refusing any non-canonical spelling."""
    if len(segment) % 4 == 1 or _BASE64URL.fullmatch(segment) is None:
        raise CompactJwsError(f"the {part} is not base64url")
    try:
        decoded = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except binascii.Error as exc:  # the checks above rule this out; kept so it stays typed
        raise CompactJwsError(f"the {part} is not base64url") from exc
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment:
        raise CompactJwsError(f"the {part} is not canonical base64url")
    return decoded


def decode_json_object(segment: bytes, part: str) -> dict[str, Any]:
    """Decode a base64url segment holding a JSON object."""
    try:
        value = orjson.loads(decode_segment(segment, part))
    except orjson.JSONDecodeError as exc:
        raise CompactJwsError(f"the {part} is not JSON") from exc
    if not isinstance(value, dict):
        raise CompactJwsError(f"the {part} is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A compact JWS split into its parts; nothing is verified yet."""

    header: dict[str, Any]
    """The protected header, decoded."""
    signing_input: bytes
    """`header.payload` as sent: the bytes the signature covers."""
    payload_segment: bytes
    """The payload, still base64url; decoded only once the signature holds."""
    signature_segment: bytes
    """The signature, still base64url; empty when it was stripped."""

    @classmethod
    def parse(cls, token: bytes) -> CompactJws:
        """Split `token` and decode its header; CompactJwsError when it is not a compact JWS."""
        parts = token.split(b".")
        if len(parts) != 3:
            raise CompactJwsError("a compact JWS has exactly three segments")
        header_segment, payload_segment, signature_segment = parts
        header = decode_json_object(header_segment, "header")
        return cls(
            header=header,
            signing_input=token[: len(header_segment) + 1 + len(payload_segment)],
            payload_segment=payload_segment,
            signature_segment=signature_segment,
        )

    def signature(self) -> bytes:
        """The decoded signature bytes."""
        return decode_segment(self.signature_segment, "signature")

    def payload(self) -> dict[str, Any]:
        """The decoded claims."""
        return decode_json_object(self.payload_segment, "payload")
