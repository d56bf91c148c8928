"""The Key Vault backend, and the real azure-keyvault-secrets clients, against a local vault."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import azure.identity.aio
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from mainmast.errors import FailedPreconditionError, NotFoundError, UnavailableError
from mainmast_config._backend import BackendKind
from mainmast_config._cache import CacheState, SecretCache
from mainmast_config._chain import BackendChain
from mainmast_config._key_vault import KeyVaultBackend, KeyVaultOptions
from mainmast_config._key_vault_errors import parse_retry_after
from mainmast_config._local_key_vault import CHALLENGE_RESOURCE, Fault, LocalKeyVault
from mainmast_config._testing import FakeClock, SyncVaultCredential, VaultCredential

# Short timeouts and no backoff keep fault tests quick; nothing asserts on a duration.
FAST = {"read_timeout": 0.5, "retry_backoff_factor": 0.0, "verify_challenge_resource": False}


def _backend(
    vault: LocalKeyVault, credential: VaultCredential, **options: object
) -> KeyVaultBackend:
    settings = {**FAST, "connection_verify": vault.ca_path, **options}
    return KeyVaultBackend(
        vault.url,
        credential=credential,
        options=KeyVaultOptions(**settings),  # type: ignore[arg-type]
    )


@pytest.fixture
async def backend(
    vault: LocalKeyVault, credential: VaultCredential
) -> AsyncIterator[KeyVaultBackend]:
    key_vault = _backend(vault, credential)
    yield key_vault
    await key_vault.aclose()


async def test_get_reads_the_latest_version_and_what_the_vault_says_of_it(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("database-password", "old-value")
    latest = vault.set_secret(
        "database-password", "new-value", content_type="text/plain", tags={"team": "core"}
    )
    record = await backend.get("database-password")
    assert (record.value, record.version, record.backend) == (
        "new-value",
        latest,
        BackendKind.KEY_VAULT,
    )
    assert (record.content_type, dict(record.labels)) == ("text/plain", {"team": "core"})
    assert record.update_time is not None
    assert abs(record.update_time - datetime.now(UTC)) < timedelta(minutes=5)


async def test_get_reads_a_version_asked_for(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    first = vault.set_secret("api-key", "one")
    vault.set_secret("api-key", "two")
    assert (await backend.get("api-key", first)).value == "one"


async def test_names_with_a_slash_are_spelled_with_two_dashes(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("payments--stripe-key", "sk")
    record = await backend.get("payments/stripe-key")
    assert (record.name, record.value) == ("payments/stripe-key", "sk")
    assert vault.requests[-1][1].startswith("/secrets/payments--stripe-key/")


async def test_the_bearer_challenge_asks_the_credential_for_the_vault_scope(
    vault: LocalKeyVault, backend: KeyVaultBackend, credential: VaultCredential
) -> None:
    vault.set_secret("a", "1")
    await backend.get("a")
    await backend.get("a")
    assert credential.scopes[0] == (f"{CHALLENGE_RESOURCE}/.default",)


async def test_a_token_the_vault_refuses_is_backend_access_denied(vault: LocalKeyVault) -> None:
    vault.set_secret("a", "1")
    key_vault = _backend(vault, VaultCredential(token="not-the-vault-token"))
    try:
        with pytest.raises(FailedPreconditionError) as caught:
            await key_vault.get("a")
    finally:
        await key_vault.aclose()
    assert (caught.value.reason, caught.value.metadata) == (
        "BACKEND_ACCESS_DENIED",
        {"backend": "KEY_VAULT"},
    )


async def test_a_missing_secret_or_version_is_not_found(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    with pytest.raises(NotFoundError) as missing:
        await backend.get("nope")
    assert missing.value.reason == "SECRET_NOT_FOUND"
    vault.set_secret("there", "x")
    with pytest.raises(NotFoundError) as no_version:
        await backend.get("there", "0" * 32)
    assert no_version.value.reason == "SECRET_VERSION_NOT_FOUND"
    assert no_version.value.metadata == {"name": "there", "version": "0" * 32}


async def test_a_name_key_vault_cannot_spell_is_not_found_without_a_request(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    with pytest.raises(NotFoundError):
        await backend.get("x" * 200)
    assert vault.requests == []


async def test_listing_follows_next_links_and_maps_names_back(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    for index in range(5):
        vault.set_secret(f"name-{index}", "x")
    vault.set_secret("payments--key", "y")
    vault.set_secret("disabled", "z", enabled=False)
    assert sorted(await backend.list_names()) == [
        *(f"name-{index}" for index in range(5)),
        "payments/key",
    ]
    assert sum("skiptoken" in path for _, path in vault.requests) == 3  # page size 2, 7 secrets


async def test_a_429_comes_back_at_once_as_throttled_with_the_retry_after(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("a", "1")
    vault.fail_next(Fault(status=429, retry_after="120"))
    with pytest.raises(UnavailableError) as caught:
        await backend.get("a")
    assert caught.value.reason == "BACKEND_THROTTLED"
    assert caught.value.retry_after == timedelta(seconds=120)
    assert len(vault.requests) == 1  # the SDK neither slept 120 s nor retried


async def test_a_500_is_backend_unavailable_without_status_retries(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("a", "1")
    vault.fail_next(Fault(status=500), count=3)
    with pytest.raises(UnavailableError) as caught:
        await backend.get("a")
    assert caught.value.reason == "BACKEND_UNAVAILABLE"
    assert len(vault.requests) == 1


async def test_a_slow_answer_times_out_as_unavailable(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("a", "1")
    vault.fail_next(Fault(delay=30), count=2)
    with pytest.raises(UnavailableError) as caught:
        await backend.get("a")
    assert caught.value.reason == "BACKEND_UNAVAILABLE"
    assert len(vault.requests) == 2  # the read was retried once


async def test_the_operation_timeout_bounds_a_call_whatever_the_read_timeout(
    vault: LocalKeyVault, credential: VaultCredential
) -> None:
    vault.set_secret("a", "1")
    vault.fail_next(Fault(delay=30))
    key_vault = _backend(vault, credential, read_timeout=60.0, operation_timeout=0.3)
    try:
        with pytest.raises(UnavailableError) as caught:
            await key_vault.get("a")
    finally:
        await key_vault.aclose()
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_one_dropped_connection_is_ridden_out_and_many_are_unavailable(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("a", "1")
    vault.fail_next(Fault(drop=True))
    assert (await backend.get("a")).value == "1"
    vault.fail_next(Fault(drop=True), count=20)
    with pytest.raises(UnavailableError) as caught:
        await backend.get("a")
    assert caught.value.reason == "BACKEND_UNAVAILABLE"


async def test_a_vault_that_is_down_is_unavailable_until_it_comes_back(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("a", "1")
    await backend.get("a")
    vault.stop()
    with pytest.raises(UnavailableError) as caught:
        await backend.get("a")
    assert (
        caught.value.message == "Backend KEY_VAULT is unavailable: the vault could not be reached"
    )
    vault.start()
    assert (await backend.get("a")).value == "1"


async def test_a_certificate_from_an_unknown_authority_is_refused(
    vault: LocalKeyVault, credential: VaultCredential
) -> None:
    vault.set_secret("a", "1")
    key_vault = _backend(vault, credential, connection_verify=True)
    try:
        with pytest.raises(UnavailableError):
            await key_vault.get("a")
    finally:
        await key_vault.aclose()
    assert vault.requests == []


async def test_the_credential_is_made_on_first_use_and_closed_with_the_backend(
    vault: LocalKeyVault,
) -> None:
    vault.set_secret("a", "1")
    made: list[VaultCredential] = []

    def factory() -> VaultCredential:
        made.append(VaultCredential())
        return made[-1]

    key_vault = KeyVaultBackend(
        vault.url,
        credential_factory=factory,
        options=KeyVaultOptions(**FAST, connection_verify=vault.ca_path),  # type: ignore[arg-type]
    )
    assert made == []
    await key_vault.get("a")
    await key_vault.get("a")
    assert len(made) == 1
    await key_vault.aclose()
    assert made[0].closed


async def test_a_credential_passed_in_stays_open(
    vault: LocalKeyVault, credential: VaultCredential
) -> None:
    vault.set_secret("a", "1")
    key_vault = _backend(vault, credential)
    await key_vault.get("a")
    await key_vault.aclose()
    assert not credential.closed


async def test_without_a_credential_default_azure_credential_is_made_on_first_use(
    vault: LocalKeyVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[VaultCredential] = []

    def default_azure_credential() -> VaultCredential:
        # Stands in for azure-identity's, which off Azure probes for seconds.
        made.append(VaultCredential())
        return made[-1]

    monkeypatch.setattr(azure.identity.aio, "DefaultAzureCredential", default_azure_credential)
    vault.set_secret("a", "1")
    key_vault = KeyVaultBackend(
        vault.url,
        options=KeyVaultOptions(**FAST, connection_verify=vault.ca_path),  # type: ignore[arg-type]
    )
    assert made == []
    assert (await key_vault.get("a")).value == "1"
    await key_vault.aclose()
    assert len(made) == 1
    assert made[0].closed


def test_construction_rejects_bad_arguments(credential: VaultCredential) -> None:
    with pytest.raises(ValueError, match="https"):
        KeyVaultBackend("http://example.vault.azure.net")
    with pytest.raises(ValueError, match="not both"):
        KeyVaultBackend(
            "https://example.vault.azure.net",
            credential=credential,
            credential_factory=lambda: credential,
        )
    with pytest.raises(ValueError, match="positive"):
        KeyVaultOptions(read_timeout=0)
    with pytest.raises(ValueError, match="negative"):
        KeyVaultOptions(retry_connect=-1)


def test_the_sync_client_reads_lists_and_sees_faults(vault: LocalKeyVault) -> None:
    version = vault.set_secret("a", "1")
    for index in range(4):
        vault.set_secret(f"n{index}", "x")
    with SecretClient(
        vault.url,
        SyncVaultCredential(),  # type: ignore[arg-type]
        verify_challenge_resource=False,
        connection_verify=vault.ca_path,
        retry_status=0,
    ) as client:
        secret = client.get_secret("a")
        assert (secret.value, secret.properties.version) == ("1", version)
        assert sorted(p.name or "" for p in client.list_properties_of_secrets()) == [
            "a",
            "n0",
            "n1",
            "n2",
            "n3",
        ]
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("missing")
        vault.fail_next(Fault(status=429, retry_after="5"))
        with pytest.raises(HttpResponseError) as caught:
            client.get_secret("a")
        assert caught.value.status_code == 429


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "Wed, 01 Jan 2025 00:01:00 GMT"}, 60.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"x-ms-retry-after-ms": "1000", "Retry-After": "9"}, 1.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "1e12"}, 86_400.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_is_read_from_seconds_dates_and_milliseconds(
    headers: dict[str, str], seconds: float | None
) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(headers, now=now) == seconds


async def test_a_storm_of_cold_reads_through_the_cache_makes_one_vault_request(
    vault: LocalKeyVault, backend: KeyVaultBackend
) -> None:
    vault.set_secret("database-password", "v1")
    cache = SecretCache(BackendChain([backend]))
    answers = await asyncio.gather(*(cache.get("database-password") for _ in range(1000)))
    assert {answer.record.value for answer in answers} == {"v1"}
    assert len(vault.requests) == 1


async def test_a_cached_name_answers_stale_while_the_vault_is_down(
    vault: LocalKeyVault, backend: KeyVaultBackend, clock: FakeClock
) -> None:
    vault.set_secret("database-password", "v1")
    cache = SecretCache(BackendChain([backend], clock=clock), clock=clock, wall_clock=clock.wall)
    await cache.get("database-password")
    vault.stop()
    clock.advance(301)
    answers = [await cache.get("database-password") for _ in range(100)]
    assert {(answer.record.value, answer.state) for answer in answers} == {
        ("v1", CacheState.STALE_IF_ERROR)
    }
    vault.start()
    clock.advance(5)
    assert (await cache.get("database-password")).state == CacheState.MISS
