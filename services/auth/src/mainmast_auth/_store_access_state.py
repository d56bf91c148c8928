"""The access state in the database: the version replicas poll, and loading what it covers.

Every write that makes tokens unacceptable (a jti or subject revoked, a tenant, user or
service account disabled) calls `bump_access_state_version` in its own transaction, in
the store functions that make those writes (`_store_tokens`, `_store_directory`), so no
writer can forget it. A replica that reads a version other than the one it loaded
reloads with `load_access_state`, which reads the version first: a change committed
while the rest is read shows as a newer version and is loaded again at the next poll.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ._access_state import AccessSnapshot
from ._models import (
    AccessStateVersionRow,
    RevokedTokenRow,
    ServiceAccountRow,
    State,
    SubjectRevocationRow,
    TenantRow,
    UserRow,
)
from ._store_common import bump_counter, counter_value


async def access_state_version(session: AsyncSession) -> int:
    """The current access-state version."""
    return await counter_value(session, AccessStateVersionRow)


async def bump_access_state_version(session: AsyncSession) -> int:
    """Mark a change of the access state in the session's transaction; the new version."""
    return await bump_counter(session, AccessStateVersionRow)


async def load_access_state(
    session: AsyncSession, *, now: datetime, token_lifetime: timedelta, leeway: timedelta
) -> AccessSnapshot:
    """Every revocation that can still matter at `now` and every disabled tenant and
    principal, with the version read before them."""
    version = await access_state_version(session)
    revoked = await session.execute(
        select(RevokedTokenRow.token_id, RevokedTokenRow.expire_time).where(
            RevokedTokenRow.expire_time > now - leeway
        )
    )
    cutoffs = await session.execute(
        select(SubjectRevocationRow.subject, SubjectRevocationRow.not_before).where(
            SubjectRevocationRow.not_before > now - token_lifetime - leeway
        )
    )
    disabled = State.DISABLED.value
    tenants = await session.execute(select(TenantRow.tenant_id).where(TenantRow.state == disabled))
    users = await session.execute(
        select(UserRow.tenant_id, UserRow.username).where(UserRow.state == disabled)
    )
    accounts = await session.execute(
        select(ServiceAccountRow.tenant_id, ServiceAccountRow.account_id).where(
            ServiceAccountRow.state == disabled
        )
    )
    return AccessSnapshot(
        version=version,
        revoked_token_ids={str(token_id): expire_time for token_id, expire_time in revoked},
        subject_cutoffs={str(subject): not_before for subject, not_before in cutoffs},
        disabled=frozenset(
            [f"tenants/{tenant_id}" for (tenant_id,) in tenants]
            + [f"tenants/{tenant_id}/users/{username}" for tenant_id, username in users]
            + [
                f"tenants/{tenant_id}/serviceAccounts/{account_id}"
                for tenant_id, account_id in accounts
            ]
        ),
    )
