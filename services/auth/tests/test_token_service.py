"""TokenService on its own over a real SQLite database: what verification remembers, and
what it still checks on every call, with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mainmast.db import DatabasePool
from mainmast.errors import UnauthenticatedError
from mainmast_auth._access_state_sync import AccessStateSync
from mainmast_auth._key_encryption import PrivateKeyCipher, generate_encryption_key
from mainmast_auth._keys import SigningAlgorithm
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._policy_sync import PolicySync
from mainmast_auth._servicer_keys import load_or_create_key_ring
from mainmast_auth._token_service import TokenService, TokenSettings
from mainmast_auth.testing import seed_tenant

PASSWORD = "correct horse battery staple"
LIFETIME = timedelta(minutes=15)
LEEWAY = timedelta(seconds=30)
TENANT = "tenants/acme"


class Clock:
    """Seconds since the epoch that move only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def database(migrated_sqlite: DatabasePool) -> DatabasePool:
    """A migrated SQLite database with tenant acme and its member alice."""
    await seed_tenant(migrated_sqlite, TENANT, "alice", password=PASSWORD)
    return migrated_sqlite


@pytest.fixture
def clock() -> Clock:
    """The clock tokens are issued and verified at."""
    return Clock()


@pytest.fixture
async def tokens(database: DatabasePool, clock: Clock) -> TokenService:
    """A TokenService on `database` with its policy and access state loaded (no polling)."""
    cipher = PrivateKeyCipher(generate_encryption_key())
    ring = await load_or_create_key_ring(
        database, cipher, algorithm=SigningAlgorithm.EDDSA, now=datetime.now(UTC)
    )
    policy = PolicySync(database)
    await policy.refresh()
    access = AccessStateSync(database, token_lifetime=LIFETIME, leeway=LEEWAY)
    await access.refresh()
    settings = TokenSettings(
        issuer="https://auth.test",
        audience="mainmast-test",
        access_token_lifetime=LIFETIME,
        algorithm=SigningAlgorithm.EDDSA,
        leeway=LEEWAY,
        jwks_max_age=timedelta(minutes=5),
    )
    return TokenService(
        database,
        cipher,
        ring,
        settings,
        hasher=PasswordHasher(),
        policy=policy,
        access=access,
        clock=clock,
    )


async def test_a_remembered_token_is_refused_once_it_expires(
    tokens: TokenService, clock: Clock
) -> None:
    issued = await tokens.password_grant(TENANT, "alice", PASSWORD, [])
    token = issued.access.token
    assert (await tokens.verify(token)).subject == "tenants/acme/users/alice"
    clock.now += (LIFETIME + LEEWAY).total_seconds() - 1
    assert await tokens.verify(token)  # within the leeway: still good
    clock.now += 1
    with pytest.raises(UnauthenticatedError) as expired:
        await tokens.verify(token)
    assert expired.value.reason == "TOKEN_EXPIRED"


async def test_a_remembered_token_is_still_refused_once_revoked(tokens: TokenService) -> None:
    issued = await tokens.password_grant(TENANT, "alice", PASSWORD, [])
    token = issued.access.token
    await tokens.verify(token)
    await tokens.revoke_token("tenants/acme/users/alice", token, why="logout")
    with pytest.raises(UnauthenticatedError) as revoked:
        await tokens.verify(token)
    assert revoked.value.reason == "TOKEN_REVOKED"


async def test_a_forged_copy_of_a_remembered_token_is_checked_in_full(tokens: TokenService) -> None:
    issued = await tokens.password_grant(TENANT, "alice", PASSWORD, [])
    token = issued.access.token
    await tokens.verify(token)
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(UnauthenticatedError) as forged:
        await tokens.verify(f"{header}.{payload}.{flipped}")
    assert forged.value.reason == "TOKEN_SIGNATURE_INVALID"
