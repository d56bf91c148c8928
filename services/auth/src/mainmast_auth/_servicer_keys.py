"""The signing keys of a running service: the sealing key, and the key ring at first start.

A fresh install has no signing key: the first start generates one and stores it sealed,
so every later start (and every replica) signs with the same key. Two replicas starting
together on an empty database cannot both store a first key: the loser gets
ConflictError from the store and loads the winner's.

With `signing_algorithm` HS256 the ring is the configured secret alone: nothing is
generated, stored or published, and the stored keys (of an earlier configuration) are
left as they are.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from mainmast.db import DatabasePool
from mainmast.errors import ConflictError
from mainmast.logging import get_logger

from ._key_encryption import PrivateKeyCipher, generate_encryption_key
from ._key_ring import KeyRing
from ._keys import SigningAlgorithm, generate_signing_key, hmac_signing_key
from ._store_keys import load_key_ring, save_key_ring
from .settings import AuthSettings

ENCRYPTION_KEY_SETTING = "MAINMAST_AUTH_SIGNING_KEY_ENCRYPTION_KEY"
"""The environment variable production sets to the sealing key."""


def signing_key_cipher(settings: AuthSettings) -> PrivateKeyCipher:
    """The cipher that seals private signing keys: the configured key, else a generated one.

    With no key configured (a zero-config local run) a key is generated once and kept in
    a file readable by its owner only, next to the SQLite database it protects. That
    keeps the "starts with no configuration" promise without storing private keys in
    clear; it is no protection against whoever can read the data folder, which is why
    a warning tells production to set the key from a secret store instead.
    """
    previous = [key.get_secret_value() for key in settings.signing_key_previous_encryption_keys]
    configured = settings.signing_key_encryption_key
    if configured is not None and configured.get_secret_value().strip():
        return PrivateKeyCipher(configured.get_secret_value(), previous_keys=previous)
    path = settings.encryption_key_file()
    get_logger(__name__).warning(
        "auth.signing_key_encryption_key_generated",
        path=str(path),
        hint=f"set {ENCRYPTION_KEY_SETTING} in production; a key file on disk is for local runs",
    )
    return PrivateKeyCipher(_generated_key(path), previous_keys=previous)


def _generated_key(path: Path) -> str:
    """The key stored at `path`, made (0600, exclusively) when there is none yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    key = generate_encryption_key()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key + "\n")
    return key


async def load_or_create_key_ring(
    database: DatabasePool,
    cipher: PrivateKeyCipher,
    *,
    algorithm: SigningAlgorithm,
    now: datetime,
) -> KeyRing:
    """The stored key ring; on a fresh install, a new key of `algorithm`, stored first."""
    async with database.session() as session:
        ring = await load_key_ring(session, cipher, now=now)
    if ring is not None:
        return ring
    ring = KeyRing(generate_signing_key(algorithm, create_time=now))
    try:
        async with database.session() as session:
            await save_key_ring(session, ring, cipher)
    except ConflictError:
        # Another replica stored the first key meanwhile: sign with that one.
        async with database.session() as session:
            stored = await load_key_ring(session, cipher, now=now)
        if stored is None:
            raise
        return stored
    get_logger(__name__).info(
        "auth.signing_key_created", key_id=ring.active.key_id, algorithm=algorithm.value
    )
    return ring


async def signing_keys(
    database: DatabasePool, settings: AuthSettings, *, now: datetime
) -> tuple[KeyRing, PrivateKeyCipher | None]:
    """The key ring to sign and verify with, and the cipher of the stored keys.

    HS256: a ring holding the configured secret, and no cipher (no key is stored). Any
    other algorithm: the stored ring (created on a fresh install) and its cipher.
    """
    if settings.signing_hmac_secret is not None:
        secret = settings.signing_hmac_secret.get_secret_value().encode()
        return KeyRing(hmac_signing_key(secret, create_time=now)), None
    cipher = signing_key_cipher(settings)
    ring = await load_or_create_key_ring(
        database, cipher, algorithm=SigningAlgorithm(settings.signing_algorithm), now=now
    )
    return ring, cipher
