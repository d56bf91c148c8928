"""The quota store a URL names: memory (the zero-config default), Redis or PostgreSQL."""

from __future__ import annotations

from typing import Final

from ._quota_postgres import PostgresQuotaStore
from ._quota_redis import DEFAULT_KEY_PREFIX, RedisQuotaStore
from ._quota_store import MemoryQuotaStore, QuotaStore

MEMORY_URL: Final = "memory://"
"""The URL of the in-memory store; so is an empty or missing URL."""

_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
_POSTGRES_SCHEMES: Final = ("postgres://", "postgresql://", "postgresql+asyncpg://")


async def open_quota_store(
    url: str | None, *, redis_key_prefix: str = DEFAULT_KEY_PREFIX
) -> QuotaStore:
    """The store at `url`, ready to count; the caller closes it.

    None, "" and `memory://` give the in-memory store (one replica only); `redis://`,
    `rediss://` and `unix://` a Redis store; a PostgreSQL URL a PostgreSQL store whose
    table is created if missing. Any other scheme raises ValueError, without the URL
    (it may carry a password).
    """
    if not url or url == MEMORY_URL:
        return MemoryQuotaStore()
    if url.startswith(_REDIS_SCHEMES):
        return RedisQuotaStore.from_url(url, key_prefix=redis_key_prefix)
    if url.startswith(_POSTGRES_SCHEMES):
        store = PostgresQuotaStore.from_url(url)
        try:
            await store.create_tables()
        except BaseException:
            await store.close()
            raise
        return store
    scheme = url.partition("://")[0] if "://" in url else "(none)"
    msg = (
        f"the quota store URL has an unknown scheme {scheme!r}: use memory://, "
        "redis://, rediss://, unix:// or a PostgreSQL URL"
    )
    raise ValueError(msg)
