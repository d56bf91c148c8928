"""Private keys at rest: sealed with AES-256-GCM, bound to their key id and algorithm."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from mainmast_auth._key_encryption import (
    KeyDecryptionError,
    PrivateKeyCipher,
    generate_encryption_key,
)
from mainmast_auth._keys import (
    SigningAlgorithm,
    SigningKey,
    generate_signing_key,
    hmac_signing_key,
)

CREATED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def keys() -> dict[SigningAlgorithm, SigningKey]:
    return {
        algorithm: generate_signing_key(algorithm, create_time=CREATED)
        for algorithm in (SigningAlgorithm.EDDSA, SigningAlgorithm.ES256, SigningAlgorithm.RS256)
    }


@pytest.fixture
def cipher() -> PrivateKeyCipher:
    return PrivateKeyCipher(generate_encryption_key())


def _der(key: SigningKey) -> bytes:
    assert not isinstance(key.private_key, bytes)
    return key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_a_sealed_key_opens_to_the_same_key(
    keys: dict[SigningAlgorithm, SigningKey], cipher: PrivateKeyCipher, algorithm: str
) -> None:
    key = keys[SigningAlgorithm(algorithm)]
    sealed = cipher.seal(key)
    assert _der(key) not in sealed
    opened = cipher.open(
        sealed, key_id=key.key_id, algorithm=key.algorithm, create_time=key.create_time
    )
    assert opened.key_id == key.key_id
    assert _der(opened) == _der(key)
    assert opened.retire_time is None


def test_the_rows_times_come_back_with_the_key(
    keys: dict[SigningAlgorithm, SigningKey], cipher: PrivateKeyCipher
) -> None:
    key = keys[SigningAlgorithm.EDDSA]
    opened = cipher.open(
        cipher.seal(key),
        key_id=key.key_id,
        algorithm=key.algorithm,
        create_time=CREATED,
        retire_time=CREATED + timedelta(days=1),
        expire_time=CREATED + timedelta(days=1, minutes=16),
    )
    assert opened.retire_time == CREATED + timedelta(days=1)
    assert opened.expire_time == CREATED + timedelta(days=1, minutes=16)


def test_sealing_twice_gives_different_bytes(
    keys: dict[SigningAlgorithm, SigningKey], cipher: PrivateKeyCipher
) -> None:
    key = keys[SigningAlgorithm.EDDSA]
    assert cipher.seal(key) != cipher.seal(key)


def test_a_sealed_key_stored_under_another_id_or_algorithm_does_not_open(
    keys: dict[SigningAlgorithm, SigningKey], cipher: PrivateKeyCipher
) -> None:
    eddsa, es256 = keys[SigningAlgorithm.EDDSA], keys[SigningAlgorithm.ES256]
    sealed = cipher.seal(eddsa)
    with pytest.raises(KeyDecryptionError, match="another key id"):
        cipher.open(sealed, key_id=es256.key_id, algorithm=eddsa.algorithm, create_time=CREATED)
    with pytest.raises(KeyDecryptionError, match="another key id"):
        cipher.open(sealed, key_id=eddsa.key_id, algorithm=es256.algorithm, create_time=CREATED)


@pytest.mark.parametrize("position", [0, 1, 9, 21, 40, -1])
def test_any_altered_byte_is_detected(
    keys: dict[SigningAlgorithm, SigningKey], cipher: PrivateKeyCipher, position: int
) -> None:
    key = keys[SigningAlgorithm.EDDSA]
    sealed = bytearray(cipher.seal(key))
    sealed[position] ^= 0x40
    with pytest.raises(KeyDecryptionError):
        cipher.open(bytes(sealed), key_id=key.key_id, algorithm=key.algorithm, create_time=CREATED)


def test_a_truncated_envelope_is_refused(
    keys: dict[SigningAlgorithm, SigningKey], cipher: PrivateKeyCipher
) -> None:
    key = keys[SigningAlgorithm.EDDSA]
    for sealed in (b"", b"\x01", cipher.seal(key)[:21]):
        with pytest.raises(KeyDecryptionError, match="envelope"):
            cipher.open(sealed, key_id=key.key_id, algorithm=key.algorithm, create_time=CREATED)


def test_the_encryption_key_can_rotate(keys: dict[SigningAlgorithm, SigningKey]) -> None:
    key = keys[SigningAlgorithm.ES256]
    old_setting, new_setting = generate_encryption_key(), generate_encryption_key()
    sealed_before = PrivateKeyCipher(old_setting).seal(key)

    without_old = PrivateKeyCipher(new_setting)
    with pytest.raises(KeyDecryptionError, match="not configured"):
        without_old.open(
            sealed_before, key_id=key.key_id, algorithm=key.algorithm, create_time=CREATED
        )

    with_old = PrivateKeyCipher(new_setting, previous_keys=[old_setting])
    opened = with_old.open(
        sealed_before, key_id=key.key_id, algorithm=key.algorithm, create_time=CREATED
    )
    assert opened.key_id == key.key_id
    assert with_old.needs_resealing(sealed_before)
    assert not with_old.needs_resealing(with_old.seal(opened))


def test_the_setting_must_be_a_random_key_not_a_passphrase() -> None:
    with pytest.raises(ValueError, match="not base64"):
        PrivateKeyCipher("correct horse battery staple")
    with pytest.raises(ValueError, match="at least 32"):
        PrivateKeyCipher("correcthorsebatterystaples")
    with pytest.raises(ValueError, match="at least 32"):
        PrivateKeyCipher(base64.b64encode(b"k" * 31).decode())
    with pytest.raises(ValueError, match="not base64"):
        PrivateKeyCipher("\u00e9" * 60)
    # Standard and URL-safe base64, padded or not, all work.
    raw = bytes(range(40))
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ):
        PrivateKeyCipher(text)
    assert len(base64.urlsafe_b64decode(generate_encryption_key())) == 32


def test_an_hs256_secret_is_never_stored(cipher: PrivateKeyCipher) -> None:
    with pytest.raises(TypeError, match="never stored"):
        cipher.seal(hmac_signing_key(b"s" * 32, create_time=CREATED))
