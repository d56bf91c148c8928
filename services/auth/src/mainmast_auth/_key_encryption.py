"""Private signing keys encrypted at rest, as bytes the database stores.

AES-256-GCM with a key derived by HKDF-SHA256 from the encryption key in settings,
rather than Fernet, for two reasons:

- associated data: each ciphertext is bound to its key id and algorithm, so a row
  copied or swapped in the database fails to decrypt instead of signing under the wrong
  `kid`; Fernet authenticates only its own token;
- rotation of the encryption key itself: the envelope names which encryption key sealed
  it (a fingerprint, not the key), so `PrivateKeyCipher` can open rows sealed under a
  previous key while sealing new ones under the current key.

The setting is a random key (at least 32 bytes, base64), not a passphrase: HKDF only
separates domains, it does not slow down guessing. `generate_encryption_key()` makes one.

Envelope: version (1 byte) | encryption key fingerprint (8) | nonce (12) | ciphertext+tag.
The plaintext is the private key in PKCS#8 DER.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._keys import (
    PrivateKey,
    SigningAlgorithm,
    SigningKey,
    signing_key_from_private_key,
)

MIN_ENCRYPTION_KEY_BYTES: Final = 32
"""The smallest encryption key accepted from settings."""

_VERSION: Final = b"\x01"
_FINGERPRINT_BYTES: Final = 8
_NONCE_BYTES: Final = 12
_HEADER_BYTES: Final = len(_VERSION) + _FINGERPRINT_BYTES + _NONCE_BYTES


class KeyDecryptionError(ValueError):
    """A sealed private key that cannot be opened: wrong encryption key, or tampered."""


def generate_encryption_key() -> str:
    """A new random encryption key for settings: 32 bytes, base64url."""
    return base64.urlsafe_b64encode(secrets.token_bytes(MIN_ENCRYPTION_KEY_BYTES)).decode("ascii")


def _decoded_setting(value: str) -> bytes:
    text = value.strip()
    try:
        decoded = base64.urlsafe_b64decode(
            text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)
        )
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the signing key encryption key is not base64") from exc
    if len(decoded) < MIN_ENCRYPTION_KEY_BYTES:
        raise ValueError(
            f"the signing key encryption key must hold at least {MIN_ENCRYPTION_KEY_BYTES} "
            "random bytes, base64-encoded; make one with generate_encryption_key()"
        )
    return decoded


def _derive(material: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"mainmast-auth signing-key encryption v1: " + purpose,
    ).derive(material)


class _EncryptionKey:
    __slots__ = ("aead", "fingerprint")

    def __init__(self, setting: str) -> None:
        material = _decoded_setting(setting)
        self.aead = AESGCM(_derive(material, b"aes-256-gcm"))
        self.fingerprint = _derive(material, b"fingerprint")[:_FINGERPRINT_BYTES]


def _associated_data(fingerprint: bytes, key_id: str, algorithm: SigningAlgorithm) -> bytes:
    return b"|".join((_VERSION + fingerprint, key_id.encode("ascii"), algorithm.value.encode()))


class PrivateKeyCipher:
    """Seals private signing keys for storage and opens them again.

    `encryption_key` is the current key from settings; `previous_keys` are older ones
    that may still have sealed stored rows (kept until every row is re-sealed).
    """

    __slots__ = ("_by_fingerprint", "_current")

    def __init__(self, encryption_key: str, *, previous_keys: Iterable[str] = ()) -> None:
        self._current = _EncryptionKey(encryption_key)
        self._by_fingerprint = {self._current.fingerprint: self._current}
        for setting in previous_keys:
            previous = _EncryptionKey(setting)
            self._by_fingerprint.setdefault(previous.fingerprint, previous)

    def seal(self, key: SigningKey) -> bytes:
        """The private key of `key`, encrypted and bound to its key id and algorithm."""
        if isinstance(key.private_key, bytes):
            raise TypeError("an HS256 secret comes from settings and is never stored")
        plaintext = key.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        current = self._current
        nonce = os.urandom(_NONCE_BYTES)
        associated = _associated_data(current.fingerprint, key.key_id, key.algorithm)
        ciphertext = current.aead.encrypt(nonce, plaintext, associated)
        return _VERSION + current.fingerprint + nonce + ciphertext

    def open(
        self,
        sealed: bytes,
        *,
        key_id: str,
        algorithm: SigningAlgorithm,
        create_time: datetime,
        retire_time: datetime | None = None,
        expire_time: datetime | None = None,
    ) -> SigningKey:
        """The signing key sealed in `sealed`; KeyDecryptionError if it cannot be opened.

        `key_id` and `algorithm` are the stored row's: they must be the ones it was
        sealed with, and the key id must be the thumbprint of the key inside. The
        times are the row's too.
        """
        if len(sealed) <= _HEADER_BYTES or sealed[:1] != _VERSION:
            raise KeyDecryptionError(f"sealed key {key_id} is not a version 1 envelope")
        fingerprint = sealed[1 : 1 + _FINGERPRINT_BYTES]
        encryption_key = self._by_fingerprint.get(fingerprint)
        if encryption_key is None:
            raise KeyDecryptionError(
                f"sealed key {key_id} was sealed with an encryption key that is not configured"
            )
        nonce = sealed[1 + _FINGERPRINT_BYTES : _HEADER_BYTES]
        try:
            plaintext = encryption_key.aead.decrypt(
                nonce, sealed[_HEADER_BYTES:], _associated_data(fingerprint, key_id, algorithm)
            )
        except InvalidTag as exc:
            raise KeyDecryptionError(
                f"sealed key {key_id} does not open: altered, or stored under another key id"
            ) from exc
        private_key = serialization.load_der_private_key(plaintext, password=None)
        key = signing_key_from_private_key(
            algorithm,
            _as_signing_private_key(private_key, key_id),
            create_time=create_time,
        )
        if key.key_id != key_id:
            raise KeyDecryptionError(f"sealed key {key_id} holds a key with another thumbprint")
        return replace(key, retire_time=retire_time, expire_time=expire_time)

    def needs_resealing(self, sealed: bytes) -> bool:
        """Whether `sealed` was sealed under a previous encryption key."""
        return sealed[1 : 1 + _FINGERPRINT_BYTES] != self._current.fingerprint


def _as_signing_private_key(private_key: object, key_id: str) -> PrivateKey:
    if isinstance(private_key, PrivateKey):
        return private_key
    raise KeyDecryptionError(f"sealed key {key_id} holds an unsupported key type")
