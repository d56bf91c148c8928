"""Signing keys: generation, key ids, and the public JWK of each key.

EdDSA (Ed25519) is the default: small keys, small signatures, fast and deterministic
signing. ES256 and RS256 are there for verifiers that lack Ed25519. HS256 exists only for
a secret configured explicitly: its key is never generated, stored, or published.

A key id is the key's RFC 7638 JWK thumbprint (SHA-256, base64url): derived from the
key itself, so every replica names the same key the same way, and well-formed by
construction (the verifier refuses any other shape of kid).
"""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.auth._jwks import MIN_HMAC_SECRET_BYTES, VerificationKey
from mainmast.errors import ValidationError

RSA_KEY_BITS: Final = 3072
"""RSA modulus size of generated RS256 keys (NIST SP 800-57: 128-bit security)."""

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""The private key types of the asymmetric algorithms."""


class SigningAlgorithm(enum.StrEnum):
    """The JWS algorithms the service signs with."""

    EDDSA = "EdDSA"
    """Ed25519 (RFC 8037), the default."""
    ES256 = "ES256"
    """ECDSA on P-256 with SHA-256."""
    RS256 = "RS256"
    """RSASSA-PKCS1-v1_5 with SHA-256, 3072-bit keys."""
    HS256 = "HS256"
    """HMAC-SHA256 with an explicitly configured secret; never published."""

    @classmethod
    def parse(cls, value: str) -> SigningAlgorithm:
        """The algorithm named `value`; ValidationError(ALGORITHM_NOT_SUPPORTED) otherwise.

        Only the asymmetric algorithms can be asked for: an HS256 key comes from settings.
        """
        if value in _GENERATED_ALGORITHMS:
            return cls(value)
        raise ValidationError(
            "The signing algorithm must be one of EdDSA, ES256, RS256.",
            reason=AuthErrorReason.ALGORITHM_NOT_SUPPORTED.value,
            domain=AUTH_ERROR_DOMAIN,
            metadata={"algorithm": value[:32]},
        )


_GENERATED_ALGORITHMS: Final = frozenset({"EdDSA", "ES256", "RS256"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# RFC 7638 section 3.2: the thumbprint covers only the required members of each key type.
_THUMBPRINT_MEMBERS: Final = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a JWK, base64url without padding."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = orjson.dumps({name: jwk[name] for name in members}, option=orjson.OPT_SORT_KEYS)
    return _b64url(hashlib.sha256(canonical).digest())


def _public_members(private_key: PrivateKey) -> dict[str, str]:
    public_key = private_key.public_key()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        members = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        members = ECAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        members = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    # pyjwt adds key_ops; a published JWK says `use: sig` instead.
    return {name: value for name, value in members.items() if isinstance(value, str)}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key the service signs access tokens with, and where it is in its life.

    Active while `retire_time` is None; retired keys stay published (and verifying)
    until `expire_time`, when the last token they signed has expired.
    """

    key_id: str
    """The `kid` of the tokens this key signs."""
    algorithm: SigningAlgorithm
    """The one algorithm this key signs with."""
    private_key: PrivateKey | bytes = field(repr=False)
    """The private key, or the HMAC secret for HS256."""
    create_time: datetime
    """When the key was made."""
    retire_time: datetime | None = None
    """When a newer key replaced it; None while active."""
    expire_time: datetime | None = None
    """When it leaves the JWKS; None while active."""

    @property
    def is_published(self) -> bool:
        """Whether the public key belongs in the JWKS (every key but an HS256 secret)."""
        return self.algorithm is not SigningAlgorithm.HS256

    def public_jwk(self) -> dict[str, str]:
        """The public key as served in the JWKS: kty, crv/x/y or n/e, kid, use, alg."""
        if isinstance(self.private_key, bytes):
            raise TypeError("an HS256 secret has no public key and is never published")
        return {
            **_public_members(self.private_key),
            "kid": self.key_id,
            "use": "sig",
            "alg": self.algorithm.value,
        }

    def verification_key(self) -> VerificationKey:
        """The key that verifies this key's signatures, for the service's own verifier."""
        if isinstance(self.private_key, bytes):
            return VerificationKey.from_hmac_secret(self.key_id, self.private_key)
        return VerificationKey.from_public_key(
            self.key_id, self.algorithm.value, self.private_key.public_key()
        )

    def retired(self, *, retire_time: datetime, expire_time: datetime) -> SigningKey:
        """This key, retired at `retire_time` and published until `expire_time`."""
        if expire_time < retire_time:
            raise ValueError("a key cannot expire before it is retired")
        return replace(self, retire_time=retire_time, expire_time=expire_time)


def generate_signing_key(
    algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA, *, create_time: datetime
) -> SigningKey:
    """A fresh key pair for `algorithm`, named by its thumbprint."""
    private_key: PrivateKey
    match algorithm:
        case SigningAlgorithm.EDDSA:
            private_key = ed25519.Ed25519PrivateKey.generate()
        case SigningAlgorithm.ES256:
            private_key = ec.generate_private_key(ec.SECP256R1())
        case SigningAlgorithm.RS256:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        case SigningAlgorithm.HS256:
            raise ValueError("HS256 keys are never generated: configure the secret explicitly")
    return signing_key_from_private_key(algorithm, private_key, create_time=create_time)


def signing_key_from_private_key(
    algorithm: SigningAlgorithm, private_key: PrivateKey, *, create_time: datetime
) -> SigningKey:
    """A signing key around an existing private key (one read back from storage)."""
    expected = {
        SigningAlgorithm.EDDSA: ed25519.Ed25519PrivateKey,
        SigningAlgorithm.ES256: ec.EllipticCurvePrivateKey,
        SigningAlgorithm.RS256: rsa.RSAPrivateKey,
    }.get(algorithm)
    if expected is None or not isinstance(private_key, expected):
        raise ValueError(f"{algorithm} does not sign with a {type(private_key).__name__}")
    if (
        isinstance(private_key, ec.EllipticCurvePrivateKey)
        and private_key.curve.name != "secp256r1"
    ):
        raise ValueError("ES256 signs with a P-256 key")
    key_id = jwk_thumbprint(_public_members(private_key))
    return SigningKey(key_id, algorithm, private_key, create_time)


def hmac_signing_key(secret: bytes, *, create_time: datetime) -> SigningKey:
    """The HS256 key of an explicitly configured secret of at least 32 bytes."""
    if len(secret) < MIN_HMAC_SECRET_BYTES:
        raise ValueError(f"an HS256 secret has at least {MIN_HMAC_SECRET_BYTES} bytes")
    # RFC 7638 thumbprint of the oct JWK: a SHA-256 of a 256-bit secret reveals nothing
    # of it, and every replica configured with the same secret derives the same kid.
    members = HMACAlgorithm.to_jwk(secret, as_dict=True)
    key_id = jwk_thumbprint({name: str(value) for name, value in members.items()})
    return SigningKey(key_id, SigningAlgorithm.HS256, secret, create_time)
