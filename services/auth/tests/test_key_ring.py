"""The key ring: rotation keeps an old key verifiable exactly until its last token expires."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mainmast.auth import AuthErrorReason
from mainmast.auth._jwks import KeySet
from mainmast.auth._verify import TokenVerifier, VerificationPolicy
from mainmast.errors import UnauthenticatedError
from mainmast_auth._key_ring import KeyRing
from mainmast_auth._keys import SigningAlgorithm, generate_signing_key, hmac_signing_key
from mainmast_auth._tokens import AccessTokenIssuer

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=15)
LEEWAY = timedelta(seconds=30)
ISSUER, AUDIENCE = "https://auth.example.test", "mainmast"


def _verifier(keys: KeySet, at: datetime) -> TokenVerifier:
    policy = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE, leeway_seconds=30)
    return TokenVerifier(keys, policy, clock=at.timestamp)


def test_rotation_retires_the_active_key_until_its_last_token_expires() -> None:
    first = generate_signing_key(create_time=T0)
    second = generate_signing_key(SigningAlgorithm.ES256, create_time=T0 + timedelta(days=1))
    rotated_at = T0 + timedelta(days=1)
    ring = KeyRing(first).rotate(second, now=rotated_at, token_lifetime=LIFETIME, leeway=LEEWAY)
    assert ring.active is second
    (retired,) = ring.retired
    assert retired.key_id == first.key_id
    assert retired.retire_time == rotated_at
    assert retired.expire_time == rotated_at + LIFETIME + LEEWAY

    # Published (active first) until the expiry, then gone.
    just_before = rotated_at + LIFETIME + LEEWAY - timedelta(seconds=1)
    assert [jwk["kid"] for jwk in ring.jwks(just_before)["keys"]] == [
        second.key_id,
        first.key_id,
    ]
    at_expiry = rotated_at + LIFETIME + LEEWAY
    assert [jwk["kid"] for jwk in ring.jwks(at_expiry)["keys"]] == [second.key_id]
    assert ring.pruned(at_expiry).retired == ()
    assert ring.pruned(just_before) is ring


def test_a_token_signed_just_before_rotation_verifies_until_it_expires_and_no_longer() -> None:
    first = generate_signing_key(create_time=T0)
    rotated_at = T0 + timedelta(hours=3)
    issuer = AccessTokenIssuer(
        issuer=ISSUER, audience=AUDIENCE, lifetime=LIFETIME, clock=rotated_at.timestamp
    )
    last_token = issuer.issue(first, subject="tenants/acme/users/alice", tenant="tenants/acme")
    ring = KeyRing(first).rotate(
        generate_signing_key(create_time=rotated_at),
        now=rotated_at,
        token_lifetime=LIFETIME,
        leeway=LEEWAY,
    )
    # The token expires at rotated_at + LIFETIME; with the verifiers' leeway it is good
    # for 30 s more, and the key is served exactly that long.
    for at in (
        rotated_at,
        rotated_at + LIFETIME,
        rotated_at + LIFETIME + LEEWAY - timedelta(seconds=1),
    ):
        published = KeySet.from_jwks(ring.jwks(at))
        assert _verifier(published, at).verify(last_token.token).key_id == first.key_id
        assert _verifier(ring.verification_keys(at), at).verify(last_token.token)
    after = rotated_at + LIFETIME + LEEWAY
    with pytest.raises(UnauthenticatedError) as caught:
        _verifier(KeySet.from_jwks(ring.jwks(after)), after).verify(last_token.token)
    assert caught.value.reason == AuthErrorReason.TOKEN_KEY_UNKNOWN.value


def test_several_rotations_keep_every_live_key_newest_first() -> None:
    ring = KeyRing(generate_signing_key(create_time=T0))
    created = [ring.active]
    for hour in range(1, 4):
        now = T0 + timedelta(minutes=5 * hour)
        new_key = generate_signing_key(create_time=now)
        ring = ring.rotate(new_key, now=now, token_lifetime=LIFETIME, leeway=LEEWAY)
        created.append(new_key)
    assert [key.key_id for key in ring.live_keys(T0 + timedelta(minutes=15))] == [
        key.key_id for key in reversed(created)
    ]
    for key in created:
        assert ring.get_key(key.key_id) is not None
    assert ring.get_key("no-such-key") is None


def test_an_hs256_key_verifies_but_is_never_in_the_jwks() -> None:
    hmac_key = hmac_signing_key(b"h" * 32, create_time=T0)
    ring = KeyRing(hmac_key)
    assert ring.jwks(T0) == {"keys": []}
    assert list(ring.verification_keys(T0)) == [hmac_key.key_id]
    # Moving to an asymmetric key keeps the secret verifying for its tokens' lifetime only.
    moved = ring.rotate(
        generate_signing_key(create_time=T0), now=T0, token_lifetime=LIFETIME, leeway=LEEWAY
    )
    assert len(moved.jwks(T0)["keys"]) == 1
    assert hmac_key.key_id in moved.verification_keys(T0)


def test_an_inconsistent_ring_cannot_be_made() -> None:
    key = generate_signing_key(create_time=T0)
    retired = key.retired(retire_time=T0, expire_time=T0 + LIFETIME)
    with pytest.raises(ValueError, match="marked retired"):
        KeyRing(retired)
    with pytest.raises(ValueError, match="once"):
        KeyRing(key, (retired,))
    other = generate_signing_key(create_time=T0)
    with pytest.raises(ValueError, match="no expire_time"):
        KeyRing(key, (replace(other, retire_time=T0),))
