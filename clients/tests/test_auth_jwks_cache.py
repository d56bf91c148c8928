"""JwksCache: local verification over keys that refresh on rotation, staleness and failure.

The key source here is an in-process function standing in for GetJwks (the end-to-end
tests against a real auth service are in services/auth/tests/test_auth_client.py); it
counts its fetches, can be made to fail, and can be held open to show single-flight.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import structlog.testing
from cryptography.hazmat.primitives.asymmetric import ed25519

from mainmast.auth import (
    AuthErrorReason,
    FetchedJwks,
    JwksCache,
    KeySet,
    VerificationKey,
    VerificationPolicy,
    VerifiedToken,
)
from mainmast.errors import UnauthenticatedError, UnavailableError

ISSUER = "https://auth.example.test"
AUDIENCE = "orders-api"
POLICY = VerificationPolicy(ISSUER, AUDIENCE)
MAX_AGE = 300.0
INTERVAL = 30.0


@dataclass
class ManualClock:
    """Monotonic seconds that move only when told."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Key:
    """An Ed25519 signing key with its id."""

    key_id: str
    private_key: ed25519.Ed25519PrivateKey = field(
        default_factory=ed25519.Ed25519PrivateKey.generate
    )

    def public(self) -> VerificationKey:
        """Its verification key."""
        return VerificationKey.from_public_key(self.key_id, "EdDSA", self.private_key.public_key())

    def token(self, key_id: str | None = None, **claims: Any) -> str:
        """A valid access token signed by this key (with `kid` = `key_id` if given)."""
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "tenants/acme/users/alice",
            "tid": "tenants/acme",
            "iat": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
        } | claims
        return jwt.encode(
            body,
            self.private_key,
            algorithm="EdDSA",
            headers={"kid": key_id or self.key_id, "typ": "at+jwt"},
        )


class KeySource:
    """The JWKS of a service: its keys, a fetch counter, an outage switch and a gate."""

    def __init__(self, *keys: Key) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False
        self.broken_document = False
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> FetchedJwks:
        """What GetJwks would answer now."""
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise UnavailableError("the auth service is down")
        if self.broken_document:
            return FetchedJwks(KeySet.from_jwks('{"keys": 7}'), MAX_AGE)
        return FetchedJwks(KeySet(key.public() for key in self.keys), MAX_AGE)


async def _loaded(source: KeySource, clock: ManualClock, **options: Any) -> JwksCache:
    cache = JwksCache(
        source.fetch, POLICY, min_refresh_interval_seconds=INTERVAL, clock=clock, **options
    )
    await cache.load()
    return cache


async def test_tokens_verify_locally_without_fetching_again() -> None:
    first = Key("key-1")
    source = KeySource(first)
    cache = await _loaded(source, ManualClock())

    verified = [await cache.verify(first.token()) for _ in range(5)]

    assert {token.subject for token in verified} == {"tenants/acme/users/alice"}
    assert source.fetches == 1
    assert cache.fetch_count == 1


async def test_an_unknown_key_id_refreshes_once_and_then_verifies() -> None:
    first, second = Key("key-1"), Key("key-2")
    source = KeySource(first)
    cache = await _loaded(source, ManualClock())
    source.keys.append(second)  # a rotation this process has not seen yet

    verified = await cache.verify(second.token())

    assert verified.key_id == "key-2"
    assert source.fetches == 2
    assert sorted(cache.keys or ()) == ["key-1", "key-2"]


async def test_concurrent_tokens_with_a_new_key_id_share_one_fetch() -> None:
    first, second = Key("key-1"), Key("key-2")
    source = KeySource(first)
    cache = await _loaded(source, ManualClock())
    source.keys.append(second)
    source.gate = asyncio.Event()

    pending = [asyncio.create_task(cache.verify(second.token())) for _ in range(20)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*pending)

    assert len(results) == 20
    assert source.fetches == 2


async def test_unknown_key_ids_refresh_at_most_once_per_interval() -> None:
    first = Key("key-1")
    source = KeySource(first)
    clock = ManualClock()
    cache = await _loaded(source, clock)
    stranger = Key("made-up")

    for _ in range(10):
        with pytest.raises(UnauthenticatedError) as caught:
            await cache.verify(stranger.token())
        assert caught.value.reason == AuthErrorReason.TOKEN_KEY_UNKNOWN
    assert source.fetches == 2  # the first unknown kid fetched; the other nine did not

    clock.now += INTERVAL
    with pytest.raises(UnauthenticatedError):
        await cache.verify(stranger.token())
    assert source.fetches == 3


async def test_a_malformed_key_id_never_triggers_a_fetch() -> None:
    first = Key("key-1")
    source = KeySource(first)
    clock = ManualClock()
    cache = await _loaded(source, clock)
    clock.now += INTERVAL

    with pytest.raises(UnauthenticatedError) as caught:
        await cache.verify(first.token(key_id="../../etc/passwd"))

    assert caught.value.reason == AuthErrorReason.TOKEN_KEY_UNKNOWN
    assert source.fetches == 1


async def test_verification_goes_on_with_the_last_good_keys_while_the_source_is_down() -> None:
    first = Key("key-1")
    source = KeySource(first)
    clock = ManualClock()
    cache = await _loaded(source, clock)
    source.down = True
    clock.now += MAX_AGE + 1  # stale: a background refresh is due, and fails

    with structlog.testing.capture_logs() as logs:
        verified = await cache.verify(first.token())
        assert await cache.refresh() is False

    assert verified.key_id == "key-1"
    assert [entry["event"] for entry in logs].count("auth.jwks_refresh_failed") >= 1
    assert logs[0]["error"] == "UnavailableError"
    assert sorted(cache.keys or ()) == ["key-1"]


async def test_an_untrustworthy_document_keeps_the_last_good_keys() -> None:
    first = Key("key-1")
    source = KeySource(first)
    cache = await _loaded(source, ManualClock())
    source.broken_document = True

    with structlog.testing.capture_logs() as logs:
        assert await cache.refresh() is False
    verified = await cache.verify(first.token())

    assert verified.key_id == "key-1"
    assert logs[0]["error"] == "KeySetError"


async def test_stale_keys_are_refreshed_in_the_background_while_the_old_ones_serve() -> None:
    first, second = Key("key-1"), Key("key-2")
    source = KeySource(first)
    clock = ManualClock()
    cache = await _loaded(source, clock)
    source.keys = [second]
    source.gate = asyncio.Event()
    clock.now += MAX_AGE

    # Verifies with the current keys at once, though the refresh it started is held.
    verified = await cache.verify(first.token())
    assert verified.key_id == "key-1"
    assert cache.fetch_count == 2
    source.gate.set()
    await cache.refresh()  # joins the fetch in flight

    assert sorted(cache.keys or ()) == ["key-2"]
    assert source.fetches == 2


async def test_with_no_keys_ever_fetched_and_the_source_down_verify_is_unavailable() -> None:
    source = KeySource(Key("key-1"))
    source.down = True
    cache = JwksCache(source.fetch, POLICY, min_refresh_interval_seconds=INTERVAL)

    with pytest.raises(UnavailableError):
        await cache.load()
    with pytest.raises(UnavailableError):
        await cache.verify(Key("key-1").token())


async def test_a_revocation_check_refuses_a_token_it_reports_revoked() -> None:
    first = Key("key-1")
    revoked_ids = {"jti-revoked"}
    seen: list[str] = []

    async def is_revoked(token: str, verified: VerifiedToken) -> bool:
        seen.append(token)
        return verified.token_id in revoked_ids

    cache = await _loaded(KeySource(first), ManualClock(), revocation_check=is_revoked)
    good = first.token(jti="jti-good")

    assert (await cache.verify(good)).token_id == "jti-good"
    with pytest.raises(UnauthenticatedError) as caught:
        await cache.verify(first.token(jti="jti-revoked"))
    assert caught.value.reason == AuthErrorReason.TOKEN_REVOKED
    assert seen[0] == good


async def test_other_failures_are_raised_without_a_fetch() -> None:
    first = Key("key-1")
    source = KeySource(first)
    clock = ManualClock()
    cache = await _loaded(source, clock)
    clock.now += INTERVAL

    with pytest.raises(UnauthenticatedError) as caught:
        await cache.verify(first.token(exp=int(time.time()) - 3600))

    assert caught.value.reason == AuthErrorReason.TOKEN_EXPIRED
    assert source.fetches == 1


async def test_close_stops_a_refresh_in_flight() -> None:
    source = KeySource(Key("key-1"))
    cache = await _loaded(source, ManualClock())
    source.gate = asyncio.Event()
    waiter = asyncio.create_task(cache.refresh())
    await asyncio.sleep(0)

    await cache.close()

    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert cache.fetch_count == 2


def test_a_negative_refresh_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_refresh_interval_seconds"):
        JwksCache(KeySource().fetch, POLICY, min_refresh_interval_seconds=-1)
