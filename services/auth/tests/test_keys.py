"""Signing keys: generation per algorithm, RFC 7638 key ids, public JWKs, HS256 rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mainmast.auth import AuthErrorReason
from mainmast.auth._jwks import KeySet, VerificationKey
from mainmast.errors import ValidationError
from mainmast_auth._keys import (
    RSA_KEY_BITS,
    SigningAlgorithm,
    generate_signing_key,
    hmac_signing_key,
    jwk_thumbprint,
    signing_key_from_private_key,
)

CREATED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_the_thumbprint_is_rfc_7638s_own_example() -> None:
    # RFC 7638 section 3.1.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
        "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTW"
        "hAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(
    ("algorithm", "key_type", "members"),
    [
        (SigningAlgorithm.EDDSA, ed25519.Ed25519PrivateKey, {"kty", "crv", "x"}),
        (SigningAlgorithm.ES256, ec.EllipticCurvePrivateKey, {"kty", "crv", "x", "y"}),
        (SigningAlgorithm.RS256, rsa.RSAPrivateKey, {"kty", "n", "e"}),
    ],
)
def test_each_algorithm_generates_a_key_named_by_its_thumbprint(
    algorithm: SigningAlgorithm, key_type: type, members: set[str]
) -> None:
    key = generate_signing_key(algorithm, create_time=CREATED)
    assert isinstance(key.private_key, key_type)
    jwk = key.public_jwk()
    assert set(jwk) == members | {"kid", "use", "alg"}
    assert (jwk["kid"], jwk["use"], jwk["alg"]) == (key.key_id, "sig", algorithm.value)
    assert key.key_id == jwk_thumbprint(jwk)
    assert len(key.key_id) == 43
    if isinstance(key.private_key, rsa.RSAPrivateKey):
        assert key.private_key.key_size == RSA_KEY_BITS
    # The JWK is what clients build their keys from; it verifies this key's signatures.
    published = KeySet.from_jwks({"keys": [jwk]})[key.key_id]
    assert published.algorithm == algorithm.value


def test_eddsa_is_the_default_and_two_keys_never_share_an_id() -> None:
    first = generate_signing_key(create_time=CREATED)
    second = generate_signing_key(create_time=CREATED)
    assert first.algorithm is SigningAlgorithm.EDDSA
    assert first.key_id != second.key_id


def test_a_key_read_back_keeps_its_id() -> None:
    key = generate_signing_key(SigningAlgorithm.ES256, create_time=CREATED)
    assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
    again = signing_key_from_private_key(
        SigningAlgorithm.ES256, key.private_key, create_time=CREATED
    )
    assert again.key_id == key.key_id


def test_a_private_key_must_fit_its_algorithm() -> None:
    with pytest.raises(ValueError, match="does not sign with"):
        signing_key_from_private_key(
            SigningAlgorithm.EDDSA, ec.generate_private_key(ec.SECP256R1()), create_time=CREATED
        )
    with pytest.raises(ValueError, match="P-256"):
        signing_key_from_private_key(
            SigningAlgorithm.ES256, ec.generate_private_key(ec.SECP384R1()), create_time=CREATED
        )


def test_hs256_keys_come_only_from_a_configured_secret_and_are_never_published() -> None:
    with pytest.raises(ValueError, match="never generated"):
        generate_signing_key(SigningAlgorithm.HS256, create_time=CREATED)
    with pytest.raises(ValueError, match="32 bytes"):
        hmac_signing_key(b"short", create_time=CREATED)
    secret = b"0123456789abcdef0123456789abcdef"
    key = hmac_signing_key(secret, create_time=CREATED)
    assert not key.is_published
    with pytest.raises(TypeError, match="never published"):
        key.public_jwk()
    # Every replica configured with the same secret names the key the same way.
    assert hmac_signing_key(secret, create_time=CREATED).key_id == key.key_id
    assert key.verification_key() == VerificationKey.from_hmac_secret(key.key_id, secret)
    assert secret.decode() not in repr(key)


def test_verification_keys_verify_what_the_key_signs() -> None:
    key = generate_signing_key(create_time=CREATED)
    assert isinstance(key.private_key, ed25519.Ed25519PrivateKey)
    signature = key.private_key.sign(b"signing input")
    assert key.verification_key().verify_signature(b"signing input", signature)


def test_retiring_sets_both_times_in_order() -> None:
    key = generate_signing_key(create_time=CREATED)
    retired = key.retired(retire_time=CREATED, expire_time=CREATED + timedelta(minutes=16))
    assert (retired.retire_time, retired.expire_time) == (CREATED, CREATED + timedelta(minutes=16))
    with pytest.raises(ValueError, match="before"):
        key.retired(retire_time=CREATED, expire_time=CREATED - timedelta(seconds=1))


@pytest.mark.parametrize("value", ["EdDSA", "ES256", "RS256"])
def test_the_asymmetric_algorithms_can_be_asked_for(value: str) -> None:
    assert SigningAlgorithm.parse(value).value == value


@pytest.mark.parametrize("value", ["HS256", "none", "PS256", "eddsa", "", "RS256 " * 20])
def test_other_algorithms_are_not_supported(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SigningAlgorithm.parse(value)
    assert caught.value.reason == AuthErrorReason.ALGORITHM_NOT_SUPPORTED.value
    assert caught.value.metadata == {"algorithm": value[:32]}


def test_no_private_key_in_a_repr() -> None:
    key = generate_signing_key(create_time=CREATED)
    assert "private_key" not in repr(key)
