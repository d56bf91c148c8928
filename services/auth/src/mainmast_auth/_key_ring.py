"""The key ring: one active signing key, and the retired keys whose tokens may still be live.

Rotation retires the active key with an expiry of `now + token lifetime + leeway`: the
last token it signed can be presented (and verified, given the verifiers' leeway) until
then, so until then its public key stays in the JWKS and in the service's own verifier.
The ring is immutable; each rotation returns a new one, which the service swaps in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mainmast.auth._jwks import KeySet

from ._keys import SigningKey


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The active signing key and the retired keys still in use, newest first."""

    active: SigningKey
    """The key new tokens are signed with."""
    retired: tuple[SigningKey, ...] = ()
    """Retired keys, newest first; each published until its `expire_time`."""

    def __post_init__(self) -> None:
        if self.active.retire_time is not None:
            raise ValueError(f"the active key {self.active.key_id} is marked retired")
        key_ids = [self.active.key_id, *(key.key_id for key in self.retired)]
        if len(set(key_ids)) != len(key_ids):
            raise ValueError("a key ring holds each key id once")
        for key in self.retired:
            if key.expire_time is None:
                raise ValueError(f"the retired key {key.key_id} has no expire_time")

    def rotate(
        self, new_key: SigningKey, *, now: datetime, token_lifetime: timedelta, leeway: timedelta
    ) -> KeyRing:
        """A ring with `new_key` active and the current key retired until its tokens expire."""
        retired = self.active.retired(retire_time=now, expire_time=now + token_lifetime + leeway)
        return KeyRing(new_key, (retired, *self.retired)).pruned(now)

    def pruned(self, now: datetime) -> KeyRing:
        """This ring without the retired keys whose last token has expired by `now`."""
        live = tuple(key for key in self.retired if key.expire_time and key.expire_time > now)
        return self if live == self.retired else KeyRing(self.active, live)

    def live_keys(self, now: datetime) -> tuple[SigningKey, ...]:
        """The keys that still verify at `now`: the active key first, then retired ones."""
        return (self.active, *self.pruned(now).retired)

    def get_key(self, key_id: str) -> SigningKey | None:
        """The key with this id, retired ones included, or None."""
        for key in (self.active, *self.retired):
            if key.key_id == key_id:
                return key
        return None

    def jwks(self, now: datetime) -> dict[str, list[dict[str, str]]]:
        """The JWK Set to publish at `now`: every live public key, active first.

        An HS256 secret is never in it.
        """
        return {"keys": [key.public_jwk() for key in self.live_keys(now) if key.is_published]}

    def verification_keys(self, now: datetime) -> KeySet:
        """The keys the service's own verifier trusts at `now` (HS256 included)."""
        return KeySet(key.verification_key() for key in self.live_keys(now))
