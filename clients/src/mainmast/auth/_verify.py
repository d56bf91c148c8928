"""Access token verification, shared by the auth service and `AuthClient.verify`.

`TokenVerifier.verify` accepts an RFC 9068 access token (`typ: at+jwt`) only if every rule
of its `VerificationPolicy` holds, and otherwise raises `mainmast.errors.UnauthenticatedError`
whose reason names the first rule broken (see `AuthErrorReason`):

1. size (TOKEN_TOO_LARGE), then the compact form (TOKEN_MALFORMED);
2. the header: `alg` in the allow-list, never `none` (TOKEN_ALGORITHM_NOT_ALLOWED); `typ`
   (TOKEN_TYPE_MISMATCH); no `crit` extension (TOKEN_CRITICAL_HEADER_UNSUPPORTED); a
   well-formed `kid` naming a known key (TOKEN_KEY_UNKNOWN) whose algorithm is the token's
   `alg` (TOKEN_ALGORITHM_NOT_ALLOWED: no HS/RS confusion). `jku`, `x5u`, `jwk` and `x5c`
   are never read, so nothing is ever fetched and no key comes from the token itself;
3. the signature (TOKEN_SIGNATURE_INVALID); only then are the claims decoded;
4. the claims: required ones present (TOKEN_CLAIM_MISSING), `exp`, `nbf`, `iat` with the
   leeway (TOKEN_EXPIRED, TOKEN_NOT_YET_VALID), `iss` (TOKEN_ISSUER_MISMATCH), `aud`
   (TOKEN_AUDIENCE_MISMATCH), claim types (TOKEN_MALFORMED);
5. the revocation check, when one is given (TOKEN_REVOKED).

The header is parsed once and keys are prepared once per key id (`KeySet`), so a
verification costs little more than the signature check itself. A token that passed is
remembered (bounded, keyed by its exact text, for as long as the key set is the same): the
next presentation of the same token skips the signature and claim checks and only has its
times checked again, as a service sees the same caller's token on every call. pyjwt does the
cryptography; the parsing and the rules are ours, because pyjwt's `decode` parses the
header a second time, checks base64 character by character in Python, and does not say
which rule a token broke.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import UnauthenticatedError

from ._compact import CompactJws, CompactJwsError
from ._jwks import ASYMMETRIC_ALGORITHMS, SUPPORTED_ALGORITHMS, KeySet, is_valid_key_id

ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 -- a media type, not a secret
"""The `typ` header of an RFC 9068 access token."""

MANDATORY_CLAIMS: Final = frozenset({"exp", "iat", "sub", "jti"})
"""Claims no policy can stop requiring."""

DEFAULT_REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "tid", "iat", "exp", "jti")
"""The claims every mainmast access token carries."""

DEFAULT_MAX_TOKEN_BYTES: Final = 8192
"""Tokens above 8 KiB are refused before any parsing."""

DEFAULT_VERIFIED_CACHE_SIZE: Final = 4096
"""How many verified tokens a verifier remembers (a few MiB at most)."""

RevocationCheck = Callable[["VerifiedToken"], bool]
"""Returns True when a token that passed every other rule is revoked; must be cheap."""


def _normalised_type(value: str) -> str:
    # RFC 9068 section 4 and RFC 7515 section 4.1.9: "at+jwt" and "application/at+jwt"
    # name the same media type, compared case-insensitively.
    lowered = value.lower()
    return lowered.removeprefix("application/")


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """What a token must satisfy to verify. Frozen: build one at startup and share it."""

    issuer: str
    """The expected `iss`, compared exactly."""
    audience: str
    """The expected `aud`."""
    algorithms: frozenset[str] = frozenset(ASYMMETRIC_ALGORITHMS)
    """The allowed `alg` values; HS256 only when a secret is configured explicitly."""
    leeway_seconds: float = 30.0
    """Clock skew tolerated on `exp`, `nbf` and `iat`."""
    strict_audience: bool = True
    """When True, `aud` must name exactly this audience; a list with others is refused."""
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    """Larger tokens are refused before parsing."""
    token_type: str = ACCESS_TOKEN_TYPE
    """The expected `typ` header."""
    required_claims: tuple[str, ...] = DEFAULT_REQUIRED_CLAIMS
    """Claims that must be present and non-empty; always includes exp, iat, sub, jti."""

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("a verification policy needs an issuer and an audience")
        algorithms = frozenset(self.algorithms)
        if not algorithms or not algorithms <= SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"allowed algorithms must be a non-empty subset of {sorted(SUPPORTED_ALGORITHMS)}"
            )
        object.__setattr__(self, "algorithms", algorithms)
        if not 0 <= self.leeway_seconds <= 300:
            raise ValueError("leeway_seconds is between 0 and 300")
        if self.max_token_bytes <= 0:
            raise ValueError("max_token_bytes is positive")
        missing = MANDATORY_CLAIMS.difference(self.required_claims)
        if missing:
            raise ValueError(f"required_claims must include {sorted(missing)}")
        object.__setattr__(self, "required_claims", tuple(self.required_claims))
        object.__setattr__(self, "token_type", _normalised_type(self.token_type))


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token that passed every rule: its claims, typed."""

    subject: str
    """`sub`: resource name of the principal, e.g. `tenants/acme/users/alice`."""
    tenant: str | None
    """`tid`: resource name of the principal's tenant."""
    token_id: str
    """`jti`."""
    issuer: str
    """`iss`."""
    audiences: tuple[str, ...]
    """`aud`, always as a tuple."""
    roles: tuple[str, ...]
    """`roles`: resource names of the roles in the token."""
    scopes: tuple[str, ...]
    """`scope`, split on spaces."""
    issued_at: float
    """`iat`, seconds since the epoch."""
    expires_at: float
    """`exp`, seconds since the epoch."""
    not_before: float | None
    """`nbf`, seconds since the epoch, when present."""
    client_id: str | None
    """`client_id`: a service account's client id; None for users."""
    key_id: str
    """The `kid` of the key that verified the signature."""
    algorithm: str
    """The `alg` of the signature."""
    claims: Mapping[str, Any] = field(repr=False)
    """Every claim, read-only."""

    @property
    def expire_time(self) -> datetime:
        """`exp` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.expires_at, UTC)

    @property
    def issue_time(self) -> datetime:
        """`iat` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.issued_at, UTC)


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _printable(value: object) -> str:
    # Header values come from whoever made the token: echo only short, plain ones.
    if isinstance(value, str) and len(value) <= 32 and value.isascii() and value.isprintable():
        return value
    return "<invalid>"


def _error(reason: AuthErrorReason, message: str, **metadata: str) -> UnauthenticatedError:
    return UnauthenticatedError(
        message, reason=reason.value, domain=AUTH_ERROR_DOMAIN, metadata=metadata
    )


def _malformed(message: str, **metadata: str) -> UnauthenticatedError:
    return _error(AuthErrorReason.TOKEN_MALFORMED, message, **metadata)


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int in Python but never a NumericDate.
    if type(value) is not int and type(value) is not float:
        raise _malformed(f"The {name} claim is not a number.", claim=name)
    return float(value)


def _required_numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = _numeric_date(claims, name)
    if value is None:  # the required-claims check reports this first; typed here too
        raise _error(
            AuthErrorReason.TOKEN_CLAIM_MISSING, f"The token has no {name} claim.", claim=name
        )
    return value


def _optional_string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise _malformed(f"The {name} claim is not a string.", claim=name)
    return value


def _string_tuple(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise _malformed(f"The {name} claim is not a list of strings.", claim=name)


class TokenVerifier:
    """Verifies access tokens against a key set and a policy; safe to share across tasks.

    `revocation_check`, when given, is called with each token that passed every other
    rule and returns True for a revoked one; it runs inline, so it must be an in-memory
    lookup, and it runs on every presentation, remembered or not. `clock` returns the
    current time in seconds since the epoch (tests pass a fixed one). `cache_size` bounds
    the verified tokens remembered; 0 verifies every presentation in full.
    """

    __slots__ = ("_cache_size", "_clock", "_keys", "_policy", "_revocation_check", "_verified")

    def __init__(
        self,
        keys: KeySet,
        policy: VerificationPolicy,
        *,
        revocation_check: RevocationCheck | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = DEFAULT_VERIFIED_CACHE_SIZE,
    ) -> None:
        if cache_size < 0:
            raise ValueError("cache_size is not negative")
        self._keys = keys
        self._policy = policy
        self._revocation_check = revocation_check
        self._clock = clock
        self._cache_size = cache_size
        # token text -> (the key set that verified it, its claims). Insertion order is
        # the eviction order: a plain dict, whose single operations the GIL keeps whole
        # when the verifier is shared with threads.
        self._verified: dict[str | bytes, tuple[KeySet, VerifiedToken]] = {}

    @property
    def keys(self) -> KeySet:
        """The key set tokens are verified against."""
        return self._keys

    @property
    def policy(self) -> VerificationPolicy:
        """The policy tokens must satisfy."""
        return self._policy

    def replace_keys(self, keys: KeySet) -> None:
        """Verify with `keys` from now on (after a JWKS refresh or a key rotation)."""
        # One reference assignment: a verification in flight keeps the set it started with.
        self._keys = keys

    def verify(self, token: str | bytes) -> VerifiedToken:
        """Verify `token` and return its claims; UnauthenticatedError names the broken rule."""
        remembered = self._verified.get(token)
        if remembered is not None and remembered[0] is self._keys:
            verified = remembered[1]
            self._check_times(verified.expires_at, verified.not_before, verified.issued_at)
        else:
            verified = self._verify_in_full(token)
            self._remember(token, verified)
        if self._revocation_check is not None and self._revocation_check(verified):
            raise _error(AuthErrorReason.TOKEN_REVOKED, "The token has been revoked.")
        return verified

    def _remember(self, token: str | bytes, verified: VerifiedToken) -> None:
        if self._cache_size == 0:
            return
        cache = self._verified
        while len(cache) >= self._cache_size:
            try:
                del cache[next(iter(cache))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                break
        cache[token] = (self._keys, verified)

    def _verify_in_full(self, token: str | bytes) -> VerifiedToken:
        policy = self._policy
        raw = self._bounded_bytes(token, policy.max_token_bytes)
        try:
            jws = CompactJws.parse(raw)
        except CompactJwsError as exc:
            raise _malformed(f"The token is not a compact JWS: {exc}.") from exc
        header = jws.header

        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in policy.algorithms:
            raise _error(
                AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED,
                "The token's signing algorithm is not allowed.",
                algorithm=_printable(algorithm),
            )
        token_type = header.get("typ")
        if not isinstance(token_type, str) or _normalised_type(token_type) != policy.token_type:
            raise _error(
                AuthErrorReason.TOKEN_TYPE_MISMATCH,
                f"The token is not of type {policy.token_type}.",
                token_type=_printable(token_type) if token_type is not None else "",
            )
        if "crit" in header:
            raise _error(
                AuthErrorReason.TOKEN_CRITICAL_HEADER_UNSUPPORTED,
                "The token names critical header extensions this verifier does not implement.",
            )
        key_id = header.get("kid")
        if not is_valid_key_id(key_id):
            raise _error(
                AuthErrorReason.TOKEN_KEY_UNKNOWN, "The token has no well-formed key id (kid)."
            )
        key = self._keys.get_key(key_id)
        if key is None:
            raise _error(
                AuthErrorReason.TOKEN_KEY_UNKNOWN,
                "The token's key id names no known key.",
                key_id=key_id,
            )
        if key.algorithm != algorithm:
            raise _error(
                AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED,
                "The token's signing algorithm is not the algorithm of its key.",
                algorithm=algorithm,
            )

        if not jws.signature_segment:
            raise _error(AuthErrorReason.TOKEN_SIGNATURE_INVALID, "The token has no signature.")
        try:
            signature = jws.signature()
        except CompactJwsError as exc:
            raise _malformed(f"The token is not a compact JWS: {exc}.") from exc
        if not key.verify_signature(jws.signing_input, signature):
            raise _error(
                AuthErrorReason.TOKEN_SIGNATURE_INVALID, "The token's signature does not verify."
            )

        try:
            claims = jws.payload()
        except CompactJwsError as exc:
            raise _malformed(f"The token is not a compact JWS: {exc}.") from exc
        return self._checked_claims(claims, key_id, algorithm)

    def _check_times(self, expires_at: float, not_before: float | None, issued_at: float) -> None:
        now = self._clock()
        leeway = self._policy.leeway_seconds
        if expires_at <= now - leeway:
            raise _error(
                AuthErrorReason.TOKEN_EXPIRED,
                "The token has expired.",
                expire_time=_rfc3339(expires_at),
            )
        for starts_at in (not_before, issued_at):
            if starts_at is not None and starts_at > now + leeway:
                raise _error(
                    AuthErrorReason.TOKEN_NOT_YET_VALID,
                    "The token is not valid yet.",
                    not_before_time=_rfc3339(starts_at),
                )

    @staticmethod
    def _bounded_bytes(token: str | bytes, max_bytes: int) -> bytes:
        if len(token) > max_bytes:
            raise _error(
                AuthErrorReason.TOKEN_TOO_LARGE,
                f"The token is larger than {max_bytes} bytes.",
                max_bytes=str(max_bytes),
            )
        if isinstance(token, bytes):
            return token
        try:
            # A compact JWS is ASCII; anything else is malformed, and the length
            # checked above is then also its size in bytes.
            return token.encode("ascii")
        except UnicodeEncodeError as exc:
            raise _malformed("The token is not a compact JWS: it is not ASCII.") from exc

    def _checked_claims(self, claims: dict[str, Any], key_id: str, algorithm: str) -> VerifiedToken:
        policy = self._policy
        for name in policy.required_claims:
            value = claims.get(name)
            if value is None or value in ("", []):
                raise _error(
                    AuthErrorReason.TOKEN_CLAIM_MISSING,
                    f"The token has no {name} claim.",
                    claim=name,
                )
        expires_at = _required_numeric_date(claims, "exp")
        issued_at = _required_numeric_date(claims, "iat")
        not_before = _numeric_date(claims, "nbf")
        self._check_times(expires_at, not_before, issued_at)
        issuer = claims.get("iss")
        if issuer != policy.issuer:
            raise _error(
                AuthErrorReason.TOKEN_ISSUER_MISMATCH, "The token was issued by another issuer."
            )
        audiences = self._checked_audiences(claims.get("aud"))
        subject = claims["sub"]
        token_id = claims["jti"]
        if not isinstance(subject, str):
            raise _malformed("The sub claim is not a string.", claim="sub")
        if not isinstance(token_id, str):
            raise _malformed("The jti claim is not a string.", claim="jti")
        scope = _optional_string(claims, "scope")
        return VerifiedToken(
            subject=subject,
            tenant=_optional_string(claims, "tid"),
            token_id=token_id,
            issuer=policy.issuer,
            audiences=audiences,
            roles=_string_tuple(claims.get("roles"), "roles"),
            scopes=tuple(scope.split()) if scope else (),
            issued_at=issued_at,
            expires_at=expires_at,
            not_before=not_before,
            client_id=_optional_string(claims, "client_id"),
            key_id=key_id,
            algorithm=algorithm,
            claims=MappingProxyType(claims),
        )

    def _checked_audiences(self, audience: object) -> tuple[str, ...]:
        policy = self._policy
        if isinstance(audience, str):
            audiences: tuple[str, ...] = (audience,)
        elif isinstance(audience, list) and all(isinstance(item, str) for item in audience):
            audiences = tuple(audience)
        else:
            raise _error(
                AuthErrorReason.TOKEN_AUDIENCE_MISMATCH,
                "The token's audience is not a string or a list of strings.",
            )
        # Strict: the token is meant for this audience alone (["api"] is as exact as
        # "api"); a token for several audiences could be replayed by any of them.
        matches = (
            audiences == (policy.audience,)
            if policy.strict_audience
            else policy.audience in audiences
        )
        if not matches:
            raise _error(
                AuthErrorReason.TOKEN_AUDIENCE_MISMATCH,
                "The token is not meant for this audience.",
                audience=policy.audience,
            )
        return audiences
