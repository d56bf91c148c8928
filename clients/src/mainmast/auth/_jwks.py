"""The keys a token verifier trusts: parsed once from a JWKS, prepared once per key id.

A `VerificationKey` binds a key id to exactly one algorithm and holds the key object
pyjwt's algorithm implementation needs, ready to use. Binding the algorithm to the key
(not trusting the token's `alg`) is what defeats algorithm confusion: an HS256 token
naming an RSA key's id is refused before any HMAC is computed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

import orjson
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK
from jwt.algorithms import Algorithm, ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError, PyJWTError

ASYMMETRIC_ALGORITHMS: Final = frozenset({"EdDSA", "ES256", "RS256"})
"""The algorithms whose public keys a JWKS may publish."""

SUPPORTED_ALGORITHMS: Final = ASYMMETRIC_ALGORITHMS | {"HS256"}
"""Every algorithm a verifier can be told to allow (HS256 only with an explicit secret)."""

MIN_HMAC_SECRET_BYTES: Final = 32
"""RFC 7518 section 3.2: an HS256 key is at least as long as the hash output."""

_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Members that only a private or symmetric JWK has (RFC 7518 section 6).
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class KeySetError(ValueError):
    """A JWKS or key that cannot be trusted for verification; the message says why."""


def is_valid_key_id(key_id: object) -> TypeGuard[str]:
    """Whether `key_id` is a well-formed key id: 1 to 128 base64url characters.

    Key ids are RFC 7638 thumbprints (43 characters); anything with path separators,
    quotes, spaces or SQL punctuation is refused before it reaches any lookup.
    """
    return isinstance(key_id, str) and _KEY_ID.fullmatch(key_id) is not None


def jwk_has_secret(jwk: Mapping[str, Any]) -> bool:
    """Whether a JWK carries private or symmetric key material."""
    return jwk.get("kty") == "oct" or not _PRIVATE_MEMBERS.isdisjoint(jwk.keys())


def _implementation(algorithm: str) -> Algorithm:
    match algorithm:
        case "EdDSA":
            return OKPAlgorithm()
        case "ES256":
            return ECAlgorithm(ECAlgorithm.SHA256)
        case "RS256":
            return RSAAlgorithm(RSAAlgorithm.SHA256)
        case "HS256":
            return HMACAlgorithm(HMACAlgorithm.SHA256)
        case _:
            supported = sorted(SUPPORTED_ALGORITHMS)
            raise KeySetError(f"algorithm {algorithm!r} is not supported; use one of {supported}")


_PUBLIC_KEY_TYPES: Final[dict[str, type]] = {
    "EdDSA": Ed25519PublicKey,
    "ES256": EllipticCurvePublicKey,
    "RS256": RSAPublicKey,
}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """One key a verifier trusts: its id, its one algorithm, and the prepared key object."""

    key_id: str
    """The `kid` tokens signed with this key carry."""
    algorithm: str
    """The only `alg` this key verifies."""
    key: Any = field(repr=False)
    """The public key object (or HMAC secret bytes), prepared for `implementation`."""
    implementation: Algorithm = field(repr=False, compare=False)
    """pyjwt's implementation of `algorithm`."""

    @classmethod
    def from_public_key(cls, key_id: str, algorithm: str, public_key: object) -> VerificationKey:
        """A key from a `cryptography` public key object of the algorithm's type."""
        if not is_valid_key_id(key_id):
            raise KeySetError("a key id is 1 to 128 base64url characters")
        expected_type = _PUBLIC_KEY_TYPES.get(algorithm)
        if expected_type is None:
            raise KeySetError(
                f"algorithm {algorithm!r} is not an asymmetric algorithm of "
                f"{sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        if not isinstance(public_key, expected_type):
            raise KeySetError(f"{algorithm} needs a {expected_type.__name__}")
        if algorithm == "ES256" and isinstance(public_key, EllipticCurvePublicKey):
            if public_key.curve.name != "secp256r1":
                raise KeySetError("ES256 needs a P-256 key")
        elif isinstance(public_key, RSAPublicKey) and public_key.key_size < 2048:
            raise KeySetError("RS256 needs an RSA key of at least 2048 bits")
        return cls(key_id, algorithm, public_key, _implementation(algorithm))

    @classmethod
    def from_hmac_secret(cls, key_id: str, secret: bytes) -> VerificationKey:
        """An HS256 key from an explicitly configured secret of at least 32 bytes."""
        if not is_valid_key_id(key_id):
            raise KeySetError("a key id is 1 to 128 base64url characters")
        if len(secret) < MIN_HMAC_SECRET_BYTES:
            raise KeySetError(f"an HS256 secret has at least {MIN_HMAC_SECRET_BYTES} bytes")
        implementation = _implementation("HS256")
        try:
            # prepare_key refuses PEM and SSH public keys, so a public key can never
            # be configured as an HMAC secret by mistake.
            prepared = implementation.prepare_key(secret)
        except InvalidKeyError as exc:
            raise KeySetError("an HS256 secret must not be a public key") from exc
        return cls(key_id, "HS256", prepared, implementation)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> VerificationKey:
        """A key from one public JWK (RFC 7517) of an EdDSA, ES256 or RS256 key."""
        if jwk_has_secret(jwk):
            raise KeySetError(
                "a JWKS publishes public keys only; a JWK with private or symmetric "
                "key material is refused (a published secret is no secret)"
            )
        key_id = jwk.get("kid")
        if not is_valid_key_id(key_id):
            raise KeySetError("a JWK needs a kid of 1 to 128 base64url characters")
        algorithm = jwk.get("alg")
        if algorithm is not None and algorithm not in ASYMMETRIC_ALGORITHMS:
            raise KeySetError(f"JWK algorithm {algorithm!r} is not supported")
        try:
            parsed = PyJWK(dict(jwk))
        except (PyJWTError, ValueError, TypeError) as exc:  # what untrusted JWK text can raise
            raise KeySetError(f"JWK {key_id} is not a usable public key: {exc}") from exc
        return cls.from_public_key(str(key_id), parsed.algorithm_name, parsed.key)

    def verify_signature(self, signing_input: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's signature over `signing_input`."""
        return bool(self.implementation.verify(signing_input, self.key, signature))


def _is_usable(jwk: Mapping[str, Any]) -> bool:
    # Keys for encryption, or of algorithms this verifier does not offer, belong to
    # other consumers of a shared JWKS: they are passed over, not fatal.
    if jwk.get("use", "sig") != "sig":
        return False
    algorithm = jwk.get("alg")
    if algorithm is not None:
        return algorithm in ASYMMETRIC_ALGORITHMS
    return jwk.get("kty") in {"OKP", "EC", "RSA"} and jwk.get("crv") in {None, "Ed25519", "P-256"}


class KeySet(Mapping[str, VerificationKey]):
    """Verification keys by key id; immutable once built."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[VerificationKey] = ()) -> None:
        by_id: dict[str, VerificationKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise KeySetError(f"key id {key.key_id} appears twice")
            by_id[key.key_id] = key
        self._keys = by_id

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any] | str | bytes) -> KeySet:
        """Parse an RFC 7517 JWK Set (a mapping or its JSON text).

        Keys for other uses or algorithms are passed over; a malformed document, a
        duplicate key id, or a key with private or symmetric material raises KeySetError.
        """
        if isinstance(document, str | bytes):
            try:
                document = orjson.loads(document)
            except orjson.JSONDecodeError as exc:
                raise KeySetError("the JWKS is not JSON") from exc
        if not isinstance(document, Mapping):
            raise KeySetError("a JWKS is a JSON object")
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise KeySetError('a JWKS has a "keys" list')
        keys = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise KeySetError("every JWKS entry is a JSON object")
            if jwk_has_secret(entry) or _is_usable(entry):
                keys.append(VerificationKey.from_jwk(entry))
        return cls(keys)

    def __getitem__(self, key_id: str) -> VerificationKey:
        return self._keys[key_id]

    def get_key(self, key_id: str) -> VerificationKey | None:
        """The key with this id, or None."""
        return self._keys.get(key_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeySet({sorted(self._keys)})"
