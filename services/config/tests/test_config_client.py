"""ConfigClient against a real config service and a real auth service: typed reads, its own
cache with single-flight, batches, typed settings, listings, errors as the taxonomy's
classes, refreshed tokens, a watch that reconnects across a restart, and every value it
hands out masked in the application's later log lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from mainmast.config import (
    Backend,
    CacheState,
    ChangeType,
    ConfigClient,
    ConfigClientConfig,
    SecretChange,
)
from mainmast.errors import (
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from mainmast.logging import get_logger
from mainmast_config._audit import AUDIT_EVENT
from mainmast_config._backend import BackendKind, digest_version
from mainmast_config._testing import Callers, ScriptedBackend, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

ServeConfig = Any
POLICY = """\
rules:
  - subjects: [tenants/acme/serviceAccounts/payments-api]
    secrets: ["payments/*"]
    settings: ["payments.*"]
  - roles: [roles/platform-admin]
    secrets: ["**"]
    settings: ["**"]
"""
STRIPE = "sk_live_client_1b2c3d4e"
VALUES = {
    "payments/stripe-key": STRIPE,
    "orders/db-password": "orders-db-client-Pa55",
    "settings/payments.retries": "3",
    "settings/payments.enabled": "off",
    "settings/payments.region": "eu-west",
    "settings/payments.limits": '{"daily": 500, "ratio": 0.5, "tags": ["a", "b"]}',
    "settings/payments.hosts": '["a.example", "b.example"]',
}


@pytest.fixture
def backend(log_scan: Any) -> ScriptedBackend:
    for value in (STRIPE, VALUES["orders/db-password"]):
        log_scan.secret(value)
    return ScriptedBackend(BackendKind.ENVIRONMENT, VALUES)


def _audited(logs: list[Any], name: str) -> int:
    return sum(1 for entry in logs if entry["event"] == AUDIT_EVENT and entry["name"] == name)


@asynccontextmanager
async def _client(target: str, token: Any, **config: Any) -> AsyncIterator[ConfigClient]:
    async with ConfigClient(target, token=token, config=ConfigClientConfig(**config)) as client:
        yield client


@pytest.fixture
def connect(serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend) -> Any:
    """`async with connect(token, service={...}, **client_config) as client:` a client holding
    `token` on a config service that serves `backend` behind POLICY (`service` adds to its
    settings), both stopped at the end of the block."""

    @asynccontextmanager
    async def connected(
        token: Any, service: dict[str, Any] | None = None, **config: Any
    ) -> AsyncIterator[ConfigClient]:
        settings = service or {}
        async with (
            serve_config(
                sources=[backend], policy=POLICY, auth_target=callers.target, **settings
            ) as running,
            _client(running.target, token, **config) as client,
        ):
            yield client

    return connected


async def test_a_secret_comes_back_typed_and_then_from_the_clients_cache(
    connect: Any, callers: Callers
) -> None:
    async with connect(callers.payments) as client:
        with capture_logs() as logs:
            first = await client.get_secret("payments/stripe-key")
            again = await client.get_secret("payments/stripe-key")
            pinned = await client.get_secret("payments/stripe-key", digest_version(STRIPE))

    assert (first.name, first.value, first.backend, first.cache_state) == (
        "payments/stripe-key",
        STRIPE,
        Backend.ENVIRONMENT,
        CacheState.MISS,
    )
    assert again is first
    assert pinned.value == STRIPE
    assert timedelta(0) < first.ttl <= timedelta(seconds=300)
    assert _audited(logs, "payments/stripe-key") == 2  # the latest once, the version once


async def test_concurrent_reads_of_a_cold_name_make_one_call(
    connect: Any, callers: Callers
) -> None:
    async with connect(callers.payments) as client:
        with capture_logs() as logs:
            values = await asyncio.gather(
                *(client.get_secret("payments/stripe-key") for _ in range(200))
            )

    assert {value.value for value in values} == {STRIPE}
    assert _audited(logs, "payments/stripe-key") == 1


async def test_the_client_keeps_a_value_no_longer_than_the_service_would(
    connect: Any, callers: Callers
) -> None:
    async with connect(
        callers.payments, service={"cache_ttl_seconds": 0.05}, cache_ttl_seconds=60
    ) as client:
        with capture_logs() as logs:
            await client.get_secret("payments/stripe-key")
            await asyncio.sleep(0.1)  # past the service's TTL, and so the client's entry
            await client.get_secret("payments/stripe-key")

    assert _audited(logs, "payments/stripe-key") == 2


async def test_get_secrets_reads_what_is_not_cached_in_batches_and_fails_as_a_whole(
    serve_config: ServeConfig, callers: Callers, log_scan: Any
) -> None:
    many = {
        f"bulk/key-{index:03d}": log_scan.secret(f"bulk-value-{index:03d}") for index in range(150)
    }
    backend = ScriptedBackend(BackendKind.ENVIRONMENT, {**VALUES, **many})
    async with (
        serve_config(sources=[backend], policy=POLICY, auth_target=callers.target) as running,
        _client(running.target, callers.admin) as admin,
        _client(running.target, callers.payments) as payments,
    ):
        await admin.get_secret("bulk/key-149")
        with capture_logs() as logs:
            found = await admin.get_secrets(["bulk/key-149", *many, "bulk/key-000"])
        with pytest.raises(NotFoundError) as missing:
            await admin.get_secrets(["payments/stripe-key", "bulk/no-such-key"])
        with pytest.raises(PermissionDeniedError) as denied:
            await payments.get_secrets(["payments/stripe-key", "orders/db-password"])

    order = ["bulk/key-149", *(name for name in many if name != "bulk/key-149")]
    assert list(found) == order  # each name once, in the order first asked
    assert [secret.value for secret in found.values()] == [many[name] for name in order]
    audited = [entry for entry in logs if entry["event"] == AUDIT_EVENT]
    assert len(audited) == 149  # the cached one was not asked for again
    assert (missing.value.reason, denied.value.reason) == (
        "SECRET_NOT_FOUND",
        "SECRET_ACCESS_DENIED",
    )


async def test_settings_come_back_as_the_python_type_asked_for(
    connect: Any, callers: Callers
) -> None:
    async with connect(callers.payments) as client:
        retries = await client.get_setting("payments.retries", int)
        enabled = await client.get_setting("payments.enabled", bool)
        region = await client.get_setting("payments.region")
        limits = await client.get_setting("payments.limits", dict)
        hosts = await client.get_setting("payments.hosts", list)
        anything = await client.get_setting("payments.hosts", object)
        as_text = await client.get_setting("payments.retries", str)
        with pytest.raises(FailedPreconditionError) as not_an_object:
            await client.get_setting("payments.hosts", dict)
        with pytest.raises(FailedPreconditionError) as not_an_int:
            await client.get_setting("payments.region", int)
        with pytest.raises(TypeError, match="read as str, int, bool"):
            await client.get_setting("payments.retries", float)  # type: ignore[call-overload]

    assert (retries, enabled, region, as_text) == (3, False, "eu-west", "3")
    assert limits == {"daily": 500, "ratio": 0.5, "tags": ["a", "b"]}
    assert isinstance(limits["daily"], int)
    assert hosts == anything == ["a.example", "b.example"]
    assert not_an_object.value.reason == not_an_int.value.reason == "SETTING_TYPE_MISMATCH"


async def test_a_listing_is_a_page_of_metadata_without_values(
    connect: Any, callers: Callers
) -> None:
    async with connect(callers.admin) as client:
        first = await client.list_secrets(page_size=1)
        second = await client.list_secrets(page_size=1, page_token=first.next_page_token or "")

    assert [item.name for item in (*first.items, *second.items)] == [
        "orders/db-password",
        "payments/stripe-key",
    ]
    assert (second.next_page_token, second.items[0].version) == (None, digest_version(STRIPE))
    assert STRIPE not in repr(second)


async def test_a_token_provider_is_asked_before_every_call(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    asked: list[str] = []

    async def service_account_token() -> str:
        pair = await callers.auth.client_credentials(
            callers.payments_client_id, callers.payments_client_secret
        )
        asked.append("token")
        return pair.access_token

    async with (
        serve_config(sources=[backend], policy=POLICY, auth_target=callers.target) as running,
        _client(running.target, service_account_token, cache_ttl_seconds=0) as client,
        _client(running.target, None) as anonymous,
    ):
        await client.get_secret("payments/stripe-key")
        await client.get_setting("payments.retries", int)
        with pytest.raises(UnauthenticatedError) as unauthenticated:
            await anonymous.get_secret("payments/stripe-key")

    assert asked == ["token", "token"]
    assert unauthenticated.value.reason == "CREDENTIALS_MISSING"


async def test_a_value_fetched_through_the_client_is_masked_in_later_log_lines(
    connect: Any, callers: Callers, log_scan: Any
) -> None:
    async with connect(callers.payments) as client:
        secret = await client.get_secret("payments/stripe-key")
    application = get_logger("payments.app")

    with log_scan.expected_leak(secret.value) as leak:
        application.info("charging", api_key_used=f"key={secret.value}")
        application.warning(f"stripe rejected {secret.value}")

    written = "".join(leak.rendered)
    assert secret.value not in written
    assert written.count("***") >= 2


async def test_a_watch_reconnects_across_a_restart_and_misses_no_rotation(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend, log_scan: Any
) -> None:
    rotated = log_scan.secret(STRIPE + "-rotated-while-down")
    port = free_port()
    settings = {
        "sources": [backend],
        "policy": POLICY,
        "auth_target": callers.target,
        "listen": f"127.0.0.1:{port}",
        "watch_poll_interval_seconds": 0.05,
        "grace_period_seconds": 0.1,
    }
    changes: asyncio.Queue[SecretChange] = asyncio.Queue()
    async with _client(
        f"127.0.0.1:{port}",
        callers.payments,
        watch_retry_min_seconds=0.05,
        watch_retry_max_seconds=0.2,
    ) as client:

        async def follow() -> None:
            async for change in client.watch(["payments/stripe-key"]):
                await changes.put(change)

        follower: asyncio.Task[None] | None = None
        try:
            with capture_logs() as logs:
                async with serve_config(**settings):
                    follower = asyncio.create_task(follow())
                    first = await asyncio.wait_for(changes.get(), 30)  # a bound on a hang
                # The service is gone; the secret rotates before it comes back.
                backend.secrets["payments/stripe-key"] = rotated
                async with serve_config(**settings):
                    second = await asyncio.wait_for(changes.get(), 30)
                    cached = await client.get_secret("payments/stripe-key")
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)

    assert (first.change_type, first.secret and first.secret.value) == (ChangeType.UPDATED, STRIPE)
    assert (second.change_type, second.secret and second.secret.value) == (
        ChangeType.UPDATED,
        rotated,
    )
    assert cached.value == rotated  # the change refreshed the client's cache
    assert changes.empty()
    assert "config.watch_reconnecting" in [entry["event"] for entry in logs]


async def test_a_watch_waits_out_a_token_provider_that_fails_for_a_while(
    connect: Any, callers: Callers
) -> None:
    attempts: list[int] = []

    async def flaky_token() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise UnavailableError("The auth service is restarting.")
        return callers.payments

    async with connect(flaky_token, watch_retry_min_seconds=0.01) as client:
        changes = client.watch(["payments/stripe-key"])
        try:
            first = await anext(changes)
        finally:
            await changes.aclose()

    assert first.secret is not None
    assert first.secret.value == STRIPE
    assert attempts == [0, 1, 2]


async def test_a_watch_ends_with_the_error_of_a_call_that_cannot_succeed(
    connect: Any, callers: Callers
) -> None:
    async with connect(callers.payments) as client:
        with pytest.raises(PermissionDeniedError) as denied:
            async for _ in client.watch(["orders/db-password"]):
                pass

    assert denied.value.metadata == {"name": "orders/db-password"}


async def test_a_client_must_be_connected_and_its_settings_make_sense() -> None:
    client = ConfigClient("127.0.0.1:1")
    with pytest.raises(RuntimeError, match="connect"):
        await client.get_secret("x")
    await client.close()  # closing an unconnected client is harmless
    assert "127.0.0.1:1" in repr(client)
    for bad in (
        {"target": ""},
        {"call_timeout_seconds": 0},
        {"cache_ttl_seconds": -1},
        {"watch_retry_min_seconds": 5, "watch_retry_max_seconds": 1},
    ):
        with pytest.raises(ValueError, match=r"\w"):
            ConfigClientConfig(**bad)
