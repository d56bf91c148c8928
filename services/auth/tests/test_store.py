"""The auth store on SQLite and PostgreSQL: directory, signing keys, refresh tokens,
revocations and policy lines, each through a real database migrated by the service's
own migrations.

The PostgreSQL database is shared by the whole test run, so every test works under names
of its own (a fresh tenant id) and asserts relative to what it finds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.auth import AuthErrorReason
from mainmast.db import DatabasePool
from mainmast.errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    UnauthenticatedError,
    ValidationError,
)
from mainmast_auth._access_state import AccessSnapshot
from mainmast_auth._authorizer import Authorizer
from mainmast_auth._key_encryption import (
    KeyDecryptionError,
    PrivateKeyCipher,
    generate_encryption_key,
)
from mainmast_auth._key_ring import KeyRing
from mainmast_auth._keys import SigningAlgorithm, generate_signing_key
from mainmast_auth._models import State
from mainmast_auth._policy_model import PolicyChange, PolicyChangeKind, PolicyLine, Section
from mainmast_auth._refresh_tokens import (
    FamilyRevokeReason,
    RefreshTokenLifetimes,
    ReuseDetected,
    Rotation,
    start_family,
)
from mainmast_auth._store_access_state import access_state_version, load_access_state
from mainmast_auth._store_directory import (
    create_service_account,
    create_tenant,
    create_user,
    disable_service_account,
    disable_tenant,
    disable_user,
    find_service_account_by_client_id,
    find_user,
    get_service_account,
    get_tenant,
    get_user,
    list_service_accounts,
    list_tenants,
    list_users,
    set_user_password,
)
from mainmast_auth._store_keys import delete_expired_signing_keys, load_key_ring, save_key_ring
from mainmast_auth._store_migrations import migrate_database
from mainmast_auth._store_policies import (
    line_create_time,
    load_policy,
    policy_version,
    save_policy_changes,
    seed_policy,
)
from mainmast_auth._store_tokens import (
    find_refresh_family,
    purge_expired,
    redeem_refresh_token,
    revoke_refresh_families,
    revoke_refresh_family,
    revoke_subject,
    revoke_token_ids,
    save_refresh_family,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIFETIMES = RefreshTokenLifetimes(idle=timedelta(days=1), absolute=timedelta(days=7))


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[DatabasePool]:
    """A migrated auth database on each backend."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    database = DatabasePool(url, pool_size=4, max_overflow=0)
    try:
        await migrate_database(database)
        yield database
    finally:
        await database.close()


@pytest.fixture
def tenant() -> str:
    """A tenant name no other test uses."""
    return f"tenants/t{uuid.uuid4().hex[:16]}"


async def _tenant(pool: DatabasePool, tenant: str) -> None:
    async with pool.session() as session:
        await create_tenant(session, tenant, display_name="Test", now=NOW)


# Directory


async def test_a_tenant_is_created_active_and_read_back(pool: DatabasePool, tenant: str) -> None:
    async with pool.session() as session:
        created = await create_tenant(session, tenant, display_name="Acme", now=NOW)
    async with pool.session() as session:
        row = await get_tenant(session, tenant)
    assert (row.name, row.display_name, row.state) == (tenant, "Acme", State.ACTIVE.value)
    assert row.create_time == NOW == row.update_time
    assert row.create_time.tzinfo is not None
    assert created.name == tenant


async def test_a_second_tenant_of_the_same_name_already_exists(
    pool: DatabasePool, tenant: str
) -> None:
    await _tenant(pool, tenant)
    with pytest.raises(AlreadyExistsError) as caught:
        async with pool.session() as session:
            await create_tenant(session, tenant, now=NOW)
    assert caught.value.metadata["resource_id"] == tenant


async def test_a_missing_tenant_is_not_found_and_a_malformed_name_is_invalid(
    pool: DatabasePool, tenant: str
) -> None:
    async with pool.session() as session:
        with pytest.raises(NotFoundError):
            await get_tenant(session, tenant)
        with pytest.raises(ValidationError):
            await get_tenant(session, "tenants/Not Valid")


async def test_disabling_a_tenant_changes_its_state_and_update_time(
    pool: DatabasePool, tenant: str
) -> None:
    await _tenant(pool, tenant)
    later = NOW + timedelta(hours=1)
    async with pool.session() as session:
        await disable_tenant(session, tenant, now=later)
    async with pool.session() as session:
        row = await get_tenant(session, tenant)
        with pytest.raises(NotFoundError):
            await disable_tenant(session, f"{tenant}x", now=later)
    assert (row.state, row.update_time) == (State.DISABLED.value, later)


async def test_tenants_are_listed_in_pages_in_name_order(pool: DatabasePool) -> None:
    prefix = f"tenants/p{uuid.uuid4().hex[:12]}"
    names = [f"{prefix}-{index}" for index in range(5)]
    for name in reversed(names):
        await _tenant(pool, name)
    seen: list[str] = []
    after: str | None = f"{prefix}-"[: len(prefix)]
    async with pool.session() as session:
        while True:
            page = await list_tenants(session, page_size=2, after=after)
            seen += [row.name for row in page.items if row.name.startswith(prefix)]
            if page.next_after is None or not page.items[-1].name.startswith(prefix):
                break
            after = page.next_after
            assert len(page.items) == 2
    assert seen == names


async def test_a_page_size_below_one_is_invalid(pool: DatabasePool) -> None:
    async with pool.session() as session:
        with pytest.raises(ValidationError):
            await list_tenants(session, page_size=0)


async def test_a_user_is_unique_per_tenant_and_keeps_its_hash(
    pool: DatabasePool, tenant: str
) -> None:
    other = f"{tenant}-b"
    await _tenant(pool, tenant)
    await _tenant(pool, other)
    async with pool.session() as session:
        user = await create_user(
            session, tenant, "alice", password_hash="$argon2id$hash", email="a@example.com", now=NOW
        )
        # The same username in another tenant is another user.
        await create_user(session, other, "alice", password_hash=None, now=NOW)
    with pytest.raises(AlreadyExistsError):
        async with pool.session() as session:
            await create_user(session, tenant, "alice", password_hash="x", now=NOW)
    async with pool.session() as session:
        row = await get_user(session, f"{tenant}/users/alice")
        assert await find_user(session, f"{tenant}/users/bob") is None
    assert row.name == user.name == f"{tenant}/users/alice"
    assert (row.password_hash, row.email, row.state) == (
        "$argon2id$hash",
        "a@example.com",
        "active",
    )
    assert uuid.UUID(row.uid)


async def test_a_user_of_a_missing_tenant_is_refused(pool: DatabasePool, tenant: str) -> None:
    async with pool.session() as session:
        with pytest.raises(NotFoundError):
            await create_user(session, tenant, "alice", password_hash=None, now=NOW)
        with pytest.raises(ValidationError):
            await create_user(session, tenant, "Alice!", password_hash=None, now=NOW)


async def test_a_password_change_and_a_disable_are_stored(pool: DatabasePool, tenant: str) -> None:
    await _tenant(pool, tenant)
    name = f"{tenant}/users/carol"
    later = NOW + timedelta(minutes=5)
    async with pool.session() as session:
        await create_user(session, tenant, "carol", password_hash="old", now=NOW)
    async with pool.session() as session:
        await set_user_password(session, name, password_hash="new", now=later)
        await disable_user(session, name, now=later)
    async with pool.session() as session:
        row = await get_user(session, name)
        with pytest.raises(NotFoundError):
            await disable_user(session, f"{tenant}/users/nobody", now=later)
    assert (row.password_hash, row.state, row.update_time) == ("new", "disabled", later)


async def test_users_are_listed_per_tenant_in_pages(pool: DatabasePool, tenant: str) -> None:
    await _tenant(pool, tenant)
    await _tenant(pool, f"{tenant}-b")
    async with pool.session() as session:
        for username in ("dave", "bob", "erin", "alice"):
            await create_user(session, tenant, username, password_hash=None, now=NOW)
        await create_user(session, f"{tenant}-b", "zed", password_hash=None, now=NOW)
    async with pool.session() as session:
        first = await list_users(session, tenant, page_size=3)
        second = await list_users(session, tenant, page_size=3, after=first.next_after)
    assert [row.name.rsplit("/", 1)[1] for row in first.items] == ["alice", "bob", "dave"]
    assert first.next_after == f"{tenant}/users/dave"
    assert [row.name.rsplit("/", 1)[1] for row in second.items] == ["erin"]
    assert second.next_after is None


async def test_a_service_account_gets_a_unique_client_id(pool: DatabasePool, tenant: str) -> None:
    await _tenant(pool, tenant)
    async with pool.session() as session:
        first = await create_service_account(
            session, tenant, "payments-api", secret_hash="h1", description="pays", now=NOW
        )
        second = await create_service_account(session, tenant, "billing", secret_hash="h2", now=NOW)
    assert first.client_id != second.client_id
    with pytest.raises(AlreadyExistsError):
        async with pool.session() as session:
            await create_service_account(session, tenant, "payments-api", secret_hash="x", now=NOW)
    async with pool.session() as session:
        found = await find_service_account_by_client_id(session, first.client_id)
        assert await find_service_account_by_client_id(session, "no-such-client") is None
        page = await list_service_accounts(session, tenant, page_size=10)
        await disable_service_account(session, first.name, now=NOW + timedelta(seconds=1))
    async with pool.session() as session:
        disabled = await get_service_account(session, first.name)
        with pytest.raises(NotFoundError):
            await get_service_account(session, f"{tenant}/serviceAccounts/nobody")
        with pytest.raises(ValidationError):
            # A user's name is no service account's name.
            await get_service_account(session, f"{tenant}/users/alice")
    assert found is not None
    assert (found.name, found.secret_hash, found.description) == (first.name, "h1", "pays")
    assert [row.name for row in page.items] == [second.name, first.name]
    assert disabled.state == State.DISABLED.value


# Signing keys


async def _current_ring(pool: DatabasePool, cipher: PrivateKeyCipher) -> KeyRing:
    """The stored ring, or a first key stored now (the database is shared by the run)."""
    async with pool.session() as session:
        ring = await load_key_ring(session, cipher, now=NOW, lock=True)
        if ring is None:
            ring = KeyRing(generate_signing_key(create_time=NOW))
            await save_key_ring(session, ring, cipher)
    return ring


ENCRYPTION_KEY = generate_encryption_key()
"""One encryption key for every key test: the run shares one PostgreSQL database."""


@pytest.fixture
def cipher() -> PrivateKeyCipher:
    """The cipher of ENCRYPTION_KEY."""
    return PrivateKeyCipher(ENCRYPTION_KEY)


async def test_a_rotation_is_stored_and_loads_back_sealed(
    pool: DatabasePool, cipher: PrivateKeyCipher
) -> None:
    ring = await _current_ring(pool, cipher)
    new_key = generate_signing_key(SigningAlgorithm.ES256, create_time=NOW)
    rotated = ring.rotate(
        new_key, now=NOW, token_lifetime=timedelta(minutes=15), leeway=timedelta(seconds=30)
    )
    async with pool.session() as session:
        await save_key_ring(session, rotated, cipher)
    async with pool.session() as session:
        loaded = await load_key_ring(session, cipher, now=NOW)
        later = await load_key_ring(session, cipher, now=NOW + timedelta(hours=1))
    assert loaded is not None
    assert later is not None
    assert loaded.active.key_id == new_key.key_id
    assert loaded.active.algorithm is SigningAlgorithm.ES256
    assert loaded.retired[0].key_id == ring.active.key_id
    assert loaded.retired[0].expire_time == NOW + timedelta(minutes=15, seconds=30)
    assert loaded.jwks(NOW) == rotated.jwks(NOW)
    # An hour on, the retired key's last token has expired: it is no longer loaded.
    assert later.retired == ()


async def test_two_active_keys_cannot_be_stored(
    pool: DatabasePool, cipher: PrivateKeyCipher
) -> None:
    await _current_ring(pool, cipher)
    # A replica that did not see the current key stores a first key of its own.
    with pytest.raises(ConflictError):
        async with pool.session() as session:
            await save_key_ring(session, KeyRing(generate_signing_key(create_time=NOW)), cipher)


async def test_keys_sealed_under_a_previous_encryption_key_are_resealed(
    pool: DatabasePool, cipher: PrivateKeyCipher
) -> None:
    ring = await _current_ring(pool, cipher)
    new_key = generate_encryption_key()
    async with pool.session() as session:
        resealed = await load_key_ring(
            session, PrivateKeyCipher(new_key, previous_keys=[ENCRYPTION_KEY]), now=NOW
        )
    try:
        # Only the new encryption key is needed now.
        async with pool.session() as session:
            loaded = await load_key_ring(session, PrivateKeyCipher(new_key), now=NOW)
        with pytest.raises(KeyDecryptionError):
            async with pool.session() as session:
                await load_key_ring(session, cipher, now=NOW)
    finally:
        # Back under the shared key, for the tests that follow on the same database.
        async with pool.session() as session:
            await load_key_ring(
                session, PrivateKeyCipher(ENCRYPTION_KEY, previous_keys=[new_key]), now=NOW
            )
    assert resealed is not None
    assert loaded is not None
    assert resealed.active.key_id == loaded.active.key_id == ring.active.key_id


async def test_expired_retired_keys_are_deleted(
    pool: DatabasePool, cipher: PrivateKeyCipher
) -> None:
    ring = await _current_ring(pool, cipher)
    rotated = ring.rotate(
        generate_signing_key(create_time=NOW),
        now=NOW,
        token_lifetime=timedelta(minutes=15),
        leeway=timedelta(0),
    )
    async with pool.session() as session:
        await save_key_ring(session, rotated, cipher)
    async with pool.session() as session:
        deleted = await delete_expired_signing_keys(session, now=NOW + timedelta(minutes=16))
        loaded = await load_key_ring(session, cipher, now=NOW)
    assert deleted >= 1
    assert loaded is not None
    assert loaded.active.key_id == rotated.active.key_id
    assert loaded.retired == ()


# Refresh tokens


async def _family(pool: DatabasePool, tenant: str) -> str:
    issued = start_family(
        subject=f"{tenant}/users/alice",
        tenant=tenant,
        scopes=("read", "write"),
        now=NOW,
        lifetimes=LIFETIMES,
    )
    async with pool.session() as session:
        await save_refresh_family(session, issued)
    return issued.token


async def test_a_refresh_token_rotates_and_its_reuse_revokes_the_family(
    pool: DatabasePool, tenant: str
) -> None:
    token = await _family(pool, tenant)
    later = NOW + timedelta(minutes=1)
    async with pool.session() as session:
        rotation = await redeem_refresh_token(session, token, now=later, lifetimes=LIFETIMES)
    assert isinstance(rotation, Rotation)
    assert rotation.successor.family.scopes == ("read", "write")
    assert rotation.successor.family.subject == f"{tenant}/users/alice"
    async with pool.session() as session:
        again = await redeem_refresh_token(
            session, rotation.successor.token, now=later, lifetimes=LIFETIMES
        )
    assert isinstance(again, Rotation)
    async with pool.session() as session:
        reuse = await redeem_refresh_token(session, token, now=later, lifetimes=LIFETIMES)
    assert isinstance(reuse, ReuseDetected)
    assert reuse.error().reason == AuthErrorReason.REFRESH_TOKEN_REUSED.value
    # The revocation was written: the newest token of the family no longer works either.
    with pytest.raises(UnauthenticatedError) as caught:
        async with pool.session() as session:
            await redeem_refresh_token(
                session, again.successor.token, now=later, lifetimes=LIFETIMES
            )
    assert caught.value.reason == AuthErrorReason.REFRESH_TOKEN_INVALID.value
    async with pool.session() as session:
        family = await find_refresh_family(session, token)
    assert family is not None
    assert family.revoke_reason is FamilyRevokeReason.REUSE_DETECTED
    assert family.revoke_time == later


async def test_an_unknown_or_lapsed_refresh_token_is_invalid(
    pool: DatabasePool, tenant: str
) -> None:
    token = await _family(pool, tenant)
    for presented, at in ((token + "x", NOW), (token, NOW + timedelta(days=2))):
        with pytest.raises(UnauthenticatedError) as caught:
            async with pool.session() as session:
                await redeem_refresh_token(session, presented, now=at, lifetimes=LIFETIMES)
        assert caught.value.reason == AuthErrorReason.REFRESH_TOKEN_INVALID.value


async def test_revoking_families_by_id_subject_and_tenant(pool: DatabasePool, tenant: str) -> None:
    first, second, third = [await _family(pool, tenant) for _ in range(3)]
    async with pool.session() as session:
        family = await find_refresh_family(session, first)
        assert family is not None
        assert await revoke_refresh_family(
            session, family.family_id, now=NOW, reason=FamilyRevokeReason.REVOKED
        )
        assert not await revoke_refresh_family(
            session, family.family_id, now=NOW, reason=FamilyRevokeReason.REVOKED
        )
        by_subject = await revoke_refresh_families(
            session,
            subject=f"{tenant}/users/alice",
            now=NOW,
            reason=FamilyRevokeReason.PASSWORD_CHANGED,
        )
    await _family(pool, tenant)
    async with pool.session() as session:
        by_tenant = await revoke_refresh_families(
            session, tenant=tenant, now=NOW, reason=FamilyRevokeReason.PRINCIPAL_DISABLED
        )
        with pytest.raises(ValueError, match="exactly one"):
            await revoke_refresh_families(session, now=NOW, reason=FamilyRevokeReason.REVOKED)
    assert (by_subject, by_tenant) == (2, 1)
    for token in (first, second, third):
        with pytest.raises(UnauthenticatedError):
            async with pool.session() as session:
                await redeem_refresh_token(session, token, now=NOW, lifetimes=LIFETIMES)


async def test_expired_families_and_revocations_are_purged(pool: DatabasePool, tenant: str) -> None:
    token = await _family(pool, tenant)
    async with pool.session() as session:
        await revoke_token_ids(session, [(f"jti-{tenant}", NOW + timedelta(minutes=15))], now=NOW)
    async with pool.session() as session:
        purged = await purge_expired(session, now=NOW + timedelta(days=8))
    async with pool.session() as session:
        assert await find_refresh_family(session, token) is None
        state = await _access_state(session, now=NOW)
    assert f"jti-{tenant}" not in state.revoked_token_ids
    assert purged.refresh_families >= 1
    assert purged.revoked_tokens >= 1


async def test_two_concurrent_redeems_of_one_token_let_exactly_one_win(
    pool: DatabasePool, tenant: str
) -> None:
    """On PostgreSQL the row lock orders them; on SQLite the single writer does. The loser
    presented a token that was spent meanwhile: a reuse, which revokes the family."""

    async def first(token: str, wrote: asyncio.Event) -> Rotation | ReuseDetected:
        async with pool.session() as session:
            outcome = await redeem_refresh_token(session, token, now=NOW, lifetimes=LIFETIMES)
            wrote.set()
            # Hold the lock a moment: the second redeem starts while it is held.
            await asyncio.sleep(0.2)
            return outcome

    async def second(token: str, wrote: asyncio.Event) -> Rotation | ReuseDetected:
        await wrote.wait()
        return await racing(token)

    async def racing(token: str) -> Rotation | ReuseDetected:
        async with pool.session() as session:
            return await redeem_refresh_token(session, token, now=NOW, lifetimes=LIFETIMES)

    for _ in range(3):
        token = await _family(pool, tenant)
        wrote = asyncio.Event()
        outcomes = await asyncio.gather(first(token, wrote), second(token, wrote))
        assert [type(outcome) for outcome in outcomes] == [Rotation, ReuseDetected]
        token = await _family(pool, tenant)
        raced = await asyncio.gather(racing(token), racing(token))
        assert sorted(type(outcome).__name__ for outcome in raced) == ["ReuseDetected", "Rotation"]
        winner = next(outcome for outcome in raced if isinstance(outcome, Rotation))
        # The loser's reuse revoked the family, the winner's new token included.
        with pytest.raises(UnauthenticatedError):
            async with pool.session() as session:
                await redeem_refresh_token(
                    session, winner.successor.token, now=NOW, lifetimes=LIFETIMES
                )


# Revocations


LIFETIME = timedelta(minutes=15)
LEEWAY = timedelta(seconds=30)


async def _access_state(session: AsyncSession, *, now: datetime) -> AccessSnapshot:
    return await load_access_state(session, now=now, token_lifetime=LIFETIME, leeway=LEEWAY)


async def test_a_revoked_jti_is_loaded_until_its_token_can_no_longer_verify(
    pool: DatabasePool, tenant: str
) -> None:
    jti = f"{tenant}-{uuid.uuid4()}"
    expiry = NOW + LIFETIME
    async with pool.session() as session:
        before = await access_state_version(session)
        await revoke_token_ids(session, [(jti, expiry)], now=NOW)
        await revoke_token_ids(session, [(jti, expiry)], now=NOW)  # twice is once
        await revoke_token_ids(session, [], now=NOW)  # nothing: no bump
    async with pool.session() as session:
        after = await access_state_version(session)
        current = await _access_state(session, now=NOW)
        within_leeway = await _access_state(session, now=expiry + LEEWAY / 2)
        afterwards = await _access_state(session, now=expiry + LEEWAY)
    assert after == before + 2
    assert current.revoked_token_ids[jti] == expiry
    assert f"{jti}-other" not in current.revoked_token_ids
    # A verifier accepts a token until its expiry plus the leeway: so long it stays refused.
    assert jti in within_leeway.revoked_token_ids
    assert jti not in afterwards.revoked_token_ids


async def test_a_subject_revocation_only_moves_forward_and_is_loaded_while_it_matters(
    pool: DatabasePool, tenant: str
) -> None:
    subject = f"{tenant}/users/alice"
    later = NOW + timedelta(hours=1)
    async with pool.session() as session:
        before = await access_state_version(session)
        assert await revoke_subject(session, subject, not_before=NOW) == NOW
    async with pool.session() as session:
        assert await revoke_subject(session, subject, not_before=NOW - timedelta(hours=1)) == NOW
        assert await revoke_subject(session, subject, not_before=later) == later
    async with pool.session() as session:
        after = await access_state_version(session)
        current = await _access_state(session, now=NOW)
        last_token_lapsing = await _access_state(session, now=later + LIFETIME)
        past_every_token = await _access_state(session, now=later + LIFETIME + LEEWAY)
    assert after == before + 3
    assert current.subject_cutoffs[subject] == later
    # Every token issued before the cutoff has expired one lifetime and the leeway later.
    assert subject in last_token_lapsing.subject_cutoffs
    assert subject not in past_every_token.subject_cutoffs


async def test_disabled_tenants_users_and_service_accounts_are_loaded_and_bump_the_version(
    pool: DatabasePool, tenant: str
) -> None:
    await _tenant(pool, tenant)
    other = f"tenants/t{uuid.uuid4().hex[:16]}"
    await _tenant(pool, other)
    async with pool.session() as session:
        await create_user(session, tenant, "alice", password_hash=None, now=NOW)
        await create_user(session, tenant, "bob", password_hash=None, now=NOW)
        await create_service_account(session, tenant, "payments", secret_hash="h", now=NOW)
        before = await access_state_version(session)
    async with pool.session() as session:
        await disable_user(session, f"{tenant}/users/alice", now=NOW)
        await disable_service_account(session, f"{tenant}/serviceAccounts/payments", now=NOW)
        await disable_tenant(session, other, now=NOW)
    async with pool.session() as session:
        bumped = await access_state_version(session)
        await disable_user(session, f"{tenant}/users/alice", now=NOW)  # disabled already
        unchanged = await access_state_version(session)
        state = await _access_state(session, now=NOW)
    assert bumped == before + 3
    assert unchanged == bumped
    assert state.version == bumped
    assert {
        f"{tenant}/users/alice",
        f"{tenant}/serviceAccounts/payments",
        other,
    } <= state.disabled
    assert f"{tenant}/users/bob" not in state.disabled
    assert tenant not in state.disabled


# Policy lines


async def test_policy_changes_are_stored_and_bump_the_version(
    pool: DatabasePool, tenant: str
) -> None:
    authorizer = Authorizer()
    async with pool.session() as session:
        start = await policy_version(session)
        seeded = await seed_policy(
            session, [change.line for change in authorizer.add_tenant(tenant)]
        )
    principal = f"{tenant}/users/alice"
    changes = authorizer.assign_role(principal, f"{tenant}/roles/admin")
    changes += authorizer.grant_permission(f"{tenant}/roles/viewer", "reports:export")
    async with pool.session() as session:
        changed = await save_policy_changes(session, changes)
        unchanged = await save_policy_changes(session, [])
    async with pool.session() as session:
        snapshot = await load_policy(session)
    assert seeded == start + 1
    assert changed == unchanged == seeded + 1
    assert snapshot.version >= changed
    ours = {line for line in snapshot.lines if tenant in line.rule[1:3]}
    assert ours == {line for line in authorizer.lines() if tenant in line.rule[1:3]}
    # A replica loading the snapshot decides as this one does.
    replica = Authorizer(snapshot.lines)
    assert replica.check(principal, tenant, "users:create")
    assert not replica.check(principal, f"{tenant}-b", "users:create")


async def test_a_stored_line_keeps_the_time_it_was_first_added(
    pool: DatabasePool, tenant: str
) -> None:
    (change,) = Authorizer().assign_role(f"{tenant}/users/alice", f"{tenant}/roles/admin")
    async with pool.session() as session:
        assert await line_create_time(session, change.line) is None
        await save_policy_changes(session, [change], now=NOW)
    async with pool.session() as session:
        await save_policy_changes(session, [change], now=NOW + timedelta(hours=1))
        first = await line_create_time(session, change.line)
        removal = PolicyChange(PolicyChangeKind.REMOVE, change.line)
        await save_policy_changes(session, [removal])
        gone = await line_create_time(session, change.line)
    assert first == NOW
    assert gone is None


async def test_removing_lines_and_adding_present_ones_are_no_errors(
    pool: DatabasePool, tenant: str
) -> None:
    grant = PolicyLine(Section.GRANT, (f"{tenant}/roles/viewer", tenant, "files", "read"))
    add = PolicyChange(PolicyChangeKind.ADD, grant)
    remove = PolicyChange(PolicyChangeKind.REMOVE, grant)
    async with pool.session() as session:
        await save_policy_changes(session, [add, add])
    async with pool.session() as session:
        present = [line for line in (await load_policy(session)).lines if line == grant]
        await save_policy_changes(session, [remove, remove])
    async with pool.session() as session:
        gone = [line for line in (await load_policy(session)).lines if line == grant]
    assert present == [grant]
    assert gone == []
