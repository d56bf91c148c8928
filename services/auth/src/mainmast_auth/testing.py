"""Helpers for tests that run a real auth service: seed tenants, users and roles directly in
its database, as an operator's bootstrap would, without going through the admin RPCs; and
wait, boundedly, for what replicas pick up by polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from mainmast.db import DatabasePool

from ._authorizer import Authorizer
from ._passwords import PasswordHasher
from ._store_directory import create_tenant, create_user, find_tenant
from ._store_policies import load_policy, save_policy_changes

EVENTUALLY_LIMIT_SECONDS: Final = 20.0
"""How long `eventually` asks at most: propagation takes about a poll interval (250 ms);
the limit only bounds a hang on a loaded machine."""


async def seed_tenant(
    database: DatabasePool,
    tenant: str,
    *users: str,
    password: str,
    role: str = "member",
    now: datetime | None = None,
) -> None:
    """Create `tenant` (unless it exists) with its default roles, and `users` with `password`
    holding `role` of that tenant."""
    created = now or datetime.now(UTC)
    password_hash = PasswordHasher().hash(password)
    async with database.session() as session:
        if await find_tenant(session, tenant) is None:
            await create_tenant(session, tenant, now=created)
        for user in users:
            await create_user(session, tenant, user, password_hash=password_hash, now=created)
        authorizer = Authorizer((await load_policy(session)).lines)
        changes = authorizer.add_tenant(tenant) + authorizer.add_platform_role()
        for user in users:
            changes += authorizer.assign_role(f"{tenant}/users/{user}", f"{tenant}/roles/{role}")
        await save_policy_changes(session, changes)


async def grant_platform_admin(database: DatabasePool, principal: str) -> None:
    """Give `principal` (a full resource name) the platform-admin role."""
    async with database.session() as session:
        authorizer = Authorizer((await load_policy(session)).lines)
        changes = authorizer.add_platform_role()
        changes += authorizer.assign_role(principal, "roles/platform-admin")
        await save_policy_changes(session, changes)


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, limit_seconds: float = EVENTUALLY_LIMIT_SECONDS
) -> bool:
    """Whether `condition()` comes true, asking every 20 ms for at most `limit_seconds`."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + limit_seconds
    while loop.time() < give_up_at:
        if await condition():
            return True
        await asyncio.sleep(0.02)
    return await condition()
