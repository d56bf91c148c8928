"""TtlLruCache: entries expire after their TTL, and the least recently used go past the bound."""

from __future__ import annotations

import pytest

from mainmast.auth._ttl_cache import TtlLruCache


class ManualClock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_lives_for_its_ttl_and_no_longer() -> None:
    clock = ManualClock()
    cache: TtlLruCache[str, bool] = TtlLruCache(ttl_seconds=5, max_entries=10, clock=clock)
    cache.put("alice", False)

    clock.now += 4
    assert cache.get("alice") is False
    clock.now += 1
    assert cache.get("alice") is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_goes_first_past_the_bound() -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(ttl_seconds=60, max_entries=2, clock=ManualClock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_storing_again_renews_the_ttl() -> None:
    clock = ManualClock()
    cache: TtlLruCache[str, int] = TtlLruCache(ttl_seconds=5, max_entries=10, clock=clock)
    cache.put("a", 1)
    clock.now += 4
    cache.put("a", 2)
    clock.now += 4

    assert cache.get("a") == 2


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (5, 0)])
def test_a_zero_ttl_or_size_keeps_nothing(ttl: float, size: int) -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(ttl_seconds=ttl, max_entries=size)
    cache.put("a", 1)

    assert cache.get("a") is None


def test_clear_forgets_everything_and_bad_bounds_are_refused() -> None:
    cache: TtlLruCache[str, int] = TtlLruCache(ttl_seconds=5, max_entries=10)
    cache.put("a", 1)
    cache.clear()

    assert cache.get("a") is None
    with pytest.raises(ValueError, match="ttl_seconds"):
        TtlLruCache(ttl_seconds=-1, max_entries=1)
    with pytest.raises(ValueError, match="max_entries"):
        TtlLruCache(ttl_seconds=1, max_entries=-1)


def test_a_value_may_be_stored_for_less_than_the_ttl_never_more_and_discarded() -> None:
    clock = ManualClock()
    cache: TtlLruCache[str, int] = TtlLruCache(ttl_seconds=5, max_entries=10, clock=clock)
    cache.put("short", 1, ttl_seconds=2)
    cache.put("long", 2, ttl_seconds=50)
    cache.put("none", 3, ttl_seconds=0)
    cache.put("gone", 4)
    cache.discard("gone")
    cache.discard("never-there")

    clock.now += 2
    assert (cache.get("short"), cache.get("long"), cache.get("none")) == (None, 2, None)
    clock.now += 3
    assert (cache.get("long"), cache.get("gone")) == (None, None)
