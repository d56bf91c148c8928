"""Key sets: what a JWKS may hold, what is passed over, and what is refused outright."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

from mainmast.auth._jwks import KeySet, KeySetError, VerificationKey, is_valid_key_id

ED25519 = ed25519.Ed25519PrivateKey.generate()
P256 = ec.generate_private_key(ec.SECP256R1())
RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_jwk(private_key: Any, **members: str) -> dict[str, Any]:
    public_key = private_key.public_key()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    return jwk | members


def _private_jwk(private_key: Any, **members: str) -> dict[str, Any]:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        jwk = OKPAlgorithm.to_jwk(private_key, as_dict=True)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(private_key, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(private_key, as_dict=True)
    return jwk | members


def test_a_jwks_of_each_algorithm_gives_keys_bound_to_their_algorithm() -> None:
    document = {
        "keys": [
            _public_jwk(ED25519, kid="ed", alg="EdDSA", use="sig"),
            _public_jwk(P256, kid="ec", alg="ES256", use="sig"),
            _public_jwk(RSA_2048, kid="rsa", alg="RS256"),
        ]
    }
    keys = KeySet.from_jwks(document)
    assert {key_id: key.algorithm for key_id, key in keys.items()} == {
        "ed": "EdDSA",
        "ec": "ES256",
        "rsa": "RS256",
    }
    message = b"header.payload"
    assert keys["ed"].verify_signature(message, ED25519.sign(message))
    assert not keys["ed"].verify_signature(message + b"!", ED25519.sign(message))


def test_json_text_parses_like_the_mapping() -> None:
    document = {"keys": [_public_jwk(ED25519, kid="ed", alg="EdDSA")]}
    assert list(KeySet.from_jwks(json.dumps(document))) == ["ed"]
    assert list(KeySet.from_jwks(json.dumps(document).encode())) == ["ed"]


def test_without_alg_the_algorithm_follows_the_key_type() -> None:
    document = {
        "keys": [
            _public_jwk(ED25519, kid="ed"),
            _public_jwk(P256, kid="ec"),
            _public_jwk(RSA_2048, kid="rsa"),
        ]
    }
    keys = KeySet.from_jwks(document)
    assert [keys[k].algorithm for k in ("ed", "ec", "rsa")] == ["EdDSA", "ES256", "RS256"]


def test_keys_for_other_uses_and_algorithms_are_passed_over() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    document = {
        "keys": [
            _public_jwk(ED25519, kid="ed", alg="EdDSA"),
            _public_jwk(P256, kid="encryption", use="enc"),
            _public_jwk(p384, kid="p384"),
            _public_jwk(p384, kid="es384", alg="ES384"),
            _public_jwk(RSA_2048, kid="pss", alg="PS256"),
            {"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "x25519"},
        ]
    }
    assert list(KeySet.from_jwks(document)) == ["ed"]


@pytest.mark.parametrize(
    "jwk",
    [
        HMACAlgorithm.to_jwk(b"s" * 32, as_dict=True) | {"kid": "oct"},
        _private_jwk(ED25519, kid="ed-private"),
        _private_jwk(P256, kid="ec-private"),
        _private_jwk(RSA_2048, kid="rsa-private"),
    ],
    ids=["symmetric", "ed25519-private", "p256-private", "rsa-private"],
)
def test_a_jwks_with_secret_material_is_refused(jwk: dict[str, Any]) -> None:
    with pytest.raises(KeySetError, match="public keys only"):
        KeySet.from_jwks({"keys": [_public_jwk(ED25519, kid="ed"), jwk]})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not JSON"),
        ([], "JSON object"),
        ({}, '"keys" list'),
        ({"keys": {"kid": "x"}}, '"keys" list'),
        ({"keys": ["a string"]}, "JSON object"),
        (
            {
                "keys": [
                    _public_jwk(ED25519, kid="same", alg="EdDSA"),
                    _public_jwk(P256, kid="same", alg="ES256"),
                ]
            },
            "appears twice",
        ),
        ({"keys": [_public_jwk(ED25519, alg="EdDSA")]}, "kid"),
        ({"keys": [_public_jwk(ED25519, kid="../keys", alg="EdDSA")]}, "kid"),
        ({"keys": [_public_jwk(ED25519, kid="ed", alg="ES256")]}, "not a usable public key"),
        ({"keys": [_public_jwk(P256, kid="ec", alg="RS256")]}, "not a usable public key"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed"}]}, "not a usable public key"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-keys",
        "keys-not-a-list",
        "entry-not-an-object",
        "duplicate-kid",
        "no-kid",
        "path-kid",
        "alg-of-another-key-type",
        "ec-key-claiming-rs256",
        "key-without-x",
    ],
)
def test_a_malformed_jwks_is_refused(document: object, message: str) -> None:
    with pytest.raises(KeySetError, match=message):
        KeySet.from_jwks(document)  # type: ignore[arg-type]


def test_hmac_secrets_must_be_long_and_cannot_be_a_public_key() -> None:
    assert VerificationKey.from_hmac_secret("hmac", b"k" * 32).algorithm == "HS256"
    with pytest.raises(KeySetError, match="32 bytes"):
        VerificationKey.from_hmac_secret("hmac", b"k" * 31)
    public_pem = RSA_2048.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeySetError, match="public key"):
        VerificationKey.from_hmac_secret("hmac", public_pem)


@pytest.mark.parametrize(
    ("algorithm", "public_key", "message"),
    [
        ("EdDSA", P256.public_key(), "Ed25519PublicKey"),
        ("ES256", ec.generate_private_key(ec.SECP384R1()).public_key(), "P-256"),
        # A weak key on purpose: the test shows it is refused.
        ("RS256", rsa.generate_private_key(65537, 1024).public_key(), "2048"),  # noqa: S505
        ("HS256", ED25519.public_key(), "asymmetric"),
        ("PS256", RSA_2048.public_key(), "asymmetric"),
    ],
)
def test_a_public_key_must_fit_its_algorithm(
    algorithm: str, public_key: object, message: str
) -> None:
    with pytest.raises(KeySetError, match=message):
        VerificationKey.from_public_key("key", algorithm, public_key)


def test_key_ids_are_base64url_words_of_at_most_128_characters() -> None:
    assert is_valid_key_id("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    assert is_valid_key_id("k" * 128)
    for key_id in ("", "k" * 129, "a/b", "a.b", "a b", "a'b", "a;b", "é", 7, None):
        assert not is_valid_key_id(key_id)


def test_key_sets_refuse_two_keys_with_one_id_and_never_show_key_material() -> None:
    key = VerificationKey.from_public_key("ed", "EdDSA", ED25519.public_key())
    with pytest.raises(KeySetError, match="twice"):
        KeySet([key, key])
    assert repr(KeySet([key])) == "KeySet(['ed'])"
    assert "key=" not in repr(key)
    secret = VerificationKey.from_hmac_secret("hmac", b"very-secret-value-of-32-bytes!!!")
    assert "very-secret" not in repr(secret)
