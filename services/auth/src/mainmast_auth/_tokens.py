"""Issuing access tokens: RFC 9068 JWTs signed with the key ring's active key.

Header: `alg`, `typ: at+jwt`, `kid`. Claims: `iss`, `aud`, `sub` (the principal's
resource name), `tid` (its tenant's), `roles`, `scope` (space-separated, RFC 8693),
`iat`, `nbf`, `exp`, `jti` (a random UUID), and `client_id` for service accounts.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt

from mainmast.auth._verify import ACCESS_TOKEN_TYPE, DEFAULT_MAX_TOKEN_BYTES

from ._keys import SigningKey

DEFAULT_ACCESS_TOKEN_LIFETIME: Final = timedelta(minutes=15)
"""How long an access token lives unless configured otherwise."""

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    """A signed access token and what it says."""

    token: str = field(repr=False)
    """The compact JWT, for `authorization: Bearer <token>`."""
    token_id: str
    """`jti`."""
    subject: str
    """`sub`."""
    tenant: str
    """`tid`."""
    roles: tuple[str, ...]
    """`roles`."""
    scopes: tuple[str, ...]
    """`scope`, as a tuple."""
    issue_time: datetime
    """`iat` (also `nbf`)."""
    expire_time: datetime
    """`exp`."""
    key_id: str
    """`kid` of the key that signed it."""


class AccessTokenIssuer:
    """Signs access tokens for one issuer and audience with a fixed lifetime."""

    __slots__ = ("_audience", "_clock", "_issuer", "_lifetime")

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        lifetime: timedelta = DEFAULT_ACCESS_TOKEN_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("an access token issuer needs an issuer and an audience")
        if lifetime <= timedelta(0):
            raise ValueError("an access token lifetime is positive")
        self._issuer = issuer
        self._audience = audience
        self._lifetime = lifetime
        self._clock = clock

    @property
    def lifetime(self) -> timedelta:
        """How long each token lives; a retired key stays published at least this long."""
        return self._lifetime

    def issue(
        self,
        key: SigningKey,
        *,
        subject: str,
        tenant: str,
        roles: Sequence[str] = (),
        scopes: Sequence[str] = (),
        client_id: str | None = None,
    ) -> IssuedAccessToken:
        """Sign a token for `subject` of `tenant` with `key` (the ring's active key)."""
        if not subject or not tenant:
            raise ValueError("an access token needs a subject and a tenant")
        for scope in scopes:
            if _SCOPE_TOKEN.fullmatch(scope) is None:
                raise ValueError(f"scope {scope!r} is not an RFC 6749 scope token")
        issued_at = int(self._clock())
        expires_at = issued_at + int(self._lifetime.total_seconds())
        token_id = str(uuid.uuid4())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "tid": tenant,
            "roles": list(roles),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": expires_at,
            "jti": token_id,
        }
        if scopes:
            claims["scope"] = " ".join(scopes)
        if client_id is not None:
            claims["client_id"] = client_id
        token = jwt.encode(
            claims,
            key.private_key,
            algorithm=key.algorithm.value,
            headers={"kid": key.key_id, "typ": ACCESS_TOKEN_TYPE},
        )
        if len(token) > DEFAULT_MAX_TOKEN_BYTES:
            # A token no verifier would accept is a configuration problem (far too many
            # roles or scopes), better refused here than at every call that presents it.
            raise ValueError(
                f"the access token would be {len(token)} bytes, above the "
                f"{DEFAULT_MAX_TOKEN_BYTES} every verifier accepts; trim roles or scopes"
            )
        return IssuedAccessToken(
            token=token,
            token_id=token_id,
            subject=subject,
            tenant=tenant,
            roles=tuple(roles),
            scopes=tuple(scopes),
            issue_time=datetime.fromtimestamp(issued_at, UTC),
            expire_time=datetime.fromtimestamp(expires_at, UTC),
            key_id=key.key_id,
        )
