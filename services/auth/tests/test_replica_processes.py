"""Two `mainmast-auth serve` processes on one database behave as one service.

Each replica keeps its policies and its access state (revocations, disabled principals)
in memory and polls a version counter to learn of changes made through another replica.
Here the replicas are separate processes, started together on a fresh database (so they
also race to migrate it and to create the first key), as a deployment's pods would be.
A grant, a revocation and a disabled user made through one replica are enforced by the
other; how long that took is logged, and the test waits far longer than the poll
interval (250 ms) before calling it lost, since this machine's load is not ours to time.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

from mainmast.auth import AuthClient, AuthClientConfig
from mainmast.errors import UnauthenticatedError
from mainmast.testing import ServiceProcess, start_service_process
from mainmast_auth._key_encryption import generate_encryption_key

ROOT_PASSWORD = "the platform's own long passphrase"
PASSWORD = "correct horse battery staple"
ALICE = "tenants/acme/users/alice"
VIEWER = "tenants/acme/roles/viewer"
# How long a change may take to reach the other replica before the test calls it lost:
# forty poll intervals, room for a loaded machine, not a measure of the service.
PROPAGATION_BOUND_SECONDS = 10.0
_RUN_CLI = "from mainmast_auth.cli import main; main()"
_log = logging.getLogger(__name__)


async def _serving_replicas(
    stack: AsyncExitStack, database_url: str, count: int
) -> list[ServiceProcess]:
    """`count` replicas started at once on one database, each serving on a port of its own."""
    env = {
        "MAINMAST_AUTH_DATABASE_URL": database_url,
        "MAINMAST_AUTH_SIGNING_KEY_ENCRYPTION_KEY": generate_encryption_key(),
        "MAINMAST_AUTH_LOG_JSON": "true",
        "MAINMAST_AUTH_BOOTSTRAP_ADMIN_TENANT": "platform",
        "MAINMAST_AUTH_BOOTSTRAP_ADMIN_USERNAME": "root",
        "MAINMAST_AUTH_BOOTSTRAP_ADMIN_PASSWORD": ROOT_PASSWORD,
    }
    argv = [sys.executable, "-c", _RUN_CLI, "serve", "--listen", "127.0.0.1:0"]
    argv += ["--metrics-listen", ""]
    replicas = [
        await stack.enter_async_context(start_service_process(argv, env=env)) for _ in range(count)
    ]
    await asyncio.gather(*(replica.address() for replica in replicas))
    return replicas


@pytest.fixture
async def clients(fresh_database_url: str) -> AsyncIterator[tuple[AuthClient, AuthClient]]:
    """Uncached clients of two replica processes of one database."""
    async with AsyncExitStack() as stack:
        first, second = await _serving_replicas(stack, fresh_database_url, 2)
        uncached = {"decision_cache_ttl_seconds": 0}
        a = await stack.enter_async_context(
            AuthClient(config=AuthClientConfig(target=await first.address(), **uncached))
        )
        b = await stack.enter_async_context(
            AuthClient(config=AuthClientConfig(target=await second.address(), **uncached))
        )
        yield a, b


async def _seconds_until(condition: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll `condition` until it holds; the seconds that took (AssertionError when never)."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > PROPAGATION_BOUND_SECONDS:
            raise AssertionError(f"{what}: not seen in {PROPAGATION_BOUND_SECONDS} s")
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    _log.info("%s: seen by the other replica after %.0f ms", what, elapsed * 1000)
    return elapsed


async def test_changes_through_one_replica_process_are_enforced_by_the_other(
    clients: tuple[AuthClient, AuthClient],
) -> None:
    a, b = clients
    root = (await a.login("tenants/platform", "root", ROOT_PASSWORD)).access_token
    await a.create_tenant("acme", display_name="Acme", bearer_token=root)
    await a.create_user("tenants/acme", "alice", PASSWORD, bearer_token=root)
    await a.assign_role(ALICE, VIEWER, bearer_token=root)
    alice = (await b.login("tenants/acme", "alice", PASSWORD)).access_token

    async def b_allows_export() -> bool:
        return await b.check("tenants/acme", "reports:export", bearer_token=alice)

    assert not await b_allows_export()
    await a.grant_role_permission(VIEWER, "reports:export", bearer_token=root)
    await _seconds_until(b_allows_export, "a grant")

    await a.revoke_role_permission(VIEWER, "reports:export", bearer_token=root)
    await _seconds_until(lambda: _negated(b_allows_export()), "a revoked grant")

    async def b_refuses(token: str) -> bool:
        try:
            await b.check("tenants/acme", "reports:read", bearer_token=token)
        except UnauthenticatedError:
            return True
        return False

    second_session = (await a.login("tenants/acme", "alice", PASSWORD)).access_token
    await a.revoke(token=alice, bearer_token=root)
    await _seconds_until(lambda: b_refuses(alice), "a revoked token")
    assert (await b.introspect(second_session, bearer_token=root)).active

    await a.disable_user(ALICE, bearer_token=root)
    await _seconds_until(lambda: b_refuses(second_session), "a disabled user")


async def _negated(value: Awaitable[bool]) -> bool:
    return not await value
