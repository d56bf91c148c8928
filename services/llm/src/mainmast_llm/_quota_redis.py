"""Quota counters in Redis, shared by every replica of the service.

Each counter is one integer key that expires a minute after its window ends. Reserving
and adjusting run as Lua scripts, which Redis runs atomically: no other command sees the
counters between the check and the increment. A tenant's keys share a hash tag, so the
keys of one script sit in one slot of a Redis Cluster too.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mainmast.errors import UnavailableError
from mainmast.llm import LLM_ERROR_DOMAIN

from ._quota_store import Counter, CounterAdjustment, CounterCharge

DEFAULT_KEY_PREFIX: Final = "mainmast:llm:quota:"
"""Where the service's counters live in the key space."""

_EXPIRY_GRACE_SECONDS: Final = 60.0
"""How long a counter outlives its window: late settlements and replicas' clock skew."""

# KEYS: the counters. ARGV: amount, limit and time to live (ms) for each key in turn.
# Returns the 0-based indexes of the charges that do not fit; it adds nothing then.
_RESERVE_SCRIPT: Final = """
local failed = {}
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[i * 3 - 2]) > tonumber(ARGV[i * 3 - 1]) then
    failed[#failed + 1] = i - 1
  end
end
if #failed == 0 then
  for i = 1, #KEYS do
    redis.call('INCRBY', KEYS[i], ARGV[i * 3 - 2])
    redis.call('PEXPIRE', KEYS[i], ARGV[i * 3])
  end
end
return failed
"""

# KEYS: the counters. ARGV: the delta for each key. A key that expired stays gone.
_ADJUST_SCRIPT: Final = """
for i = 1, #KEYS do
  local used = redis.call('GET', KEYS[i])
  if used then
    local value = tonumber(used) + tonumber(ARGV[i])
    if value < 0 then value = 0 end
    redis.call('SET', KEYS[i], value, 'KEEPTTL')
  end
end
return 0
"""


class RedisQuotaStore:
    """Quota counters in Redis: atomic Lua scripts, keys that expire after their window."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        owns_client: bool = False,
    ) -> None:
        """Count in `client` under `key_prefix`; `owns_client` makes `close` close it."""
        self._client = client
        self._key_prefix = key_prefix
        self._owns_client = owns_client
        self._reserve = client.register_script(_RESERVE_SCRIPT)
        self._adjust = client.register_script(_ADJUST_SCRIPT)

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = DEFAULT_KEY_PREFIX) -> RedisQuotaStore:
        """A store on its own connection pool to the Redis at `url` (redis:// or rediss://)."""
        return cls(aioredis.Redis.from_url(url), key_prefix=key_prefix, owns_client=True)

    def __repr__(self) -> str:
        return f"RedisQuotaStore(key_prefix={self._key_prefix!r})"

    def key(self, counter: Counter) -> str:
        """The Redis key of `counter`; the tenant is the hash tag."""
        return f"{self._key_prefix}{{{counter.tenant}}}:{counter.kind_name}:{counter.window.start}"

    async def reserve(self, charges: Sequence[CounterCharge], *, now: float) -> tuple[int, ...]:
        """Add every charge, or none: the indexes of the charges that would pass their limit."""
        arguments: list[int] = []
        for charge in charges:
            time_to_live = charge.counter.window.end - now + _EXPIRY_GRACE_SECONDS
            arguments += [charge.amount, charge.limit, max(math.ceil(time_to_live * 1000), 1)]
        async with self._unavailable_on_failure():
            failed = await self._reserve(
                keys=[self.key(charge.counter) for charge in charges], args=arguments
            )
        return tuple(int(index) for index in failed)

    async def adjust(self, adjustments: Sequence[CounterAdjustment], *, now: float) -> None:
        """Add each delta to its counter, flooring at zero; expired counters stay gone."""
        if not adjustments:
            return
        async with self._unavailable_on_failure():
            await self._adjust(
                keys=[self.key(adjustment.counter) for adjustment in adjustments],
                args=[adjustment.delta for adjustment in adjustments],
            )

    async def used(self, counter: Counter) -> int:
        """The amount counted so far (0 once the key expired)."""
        async with self._unavailable_on_failure():
            value = await self._client.get(self.key(counter))
        return int(value) if value is not None else 0

    async def close(self) -> None:
        """Close the connection pool if this store made it."""
        if self._owns_client:
            await self._client.aclose()

    @contextlib.asynccontextmanager
    async def _unavailable_on_failure(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise UnavailableError(
                "The quota counters in Redis cannot be reached.",
                reason="QUOTA_STORE_UNAVAILABLE",
                domain=LLM_ERROR_DOMAIN,
            ) from exc
