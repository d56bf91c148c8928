"""A source for the secret cache that never lets a read older than a detected change win.

The race it closes: a cache read of `name` starts, the backend rotates the secret, the
watcher sees the new version and invalidates the cache entry, and only then does the first
read return, with the old value. `SecretCache.invalidate` forgets entries but cannot stop a
read in flight, so that read would store the old value for a whole TTL, and every caller
that joined it (single-flight) would get the old value too.

Reading through a `ReadGuard` closes it: when the watcher reports a change of a name
(`changed`), every read of its latest version then in flight is marked overtaken, and on
return it reads again instead of answering. The second read started after the change was
seen, so it answers the new version (or a newer one). Reads of a pinned version pass through:
a version's value never changes.
"""

from __future__ import annotations

from mainmast.errors import NotFoundError

from ._backend import SecretRecord
from ._cache import SecretSource


class _Read:
    __slots__ = ("overtaken",)

    def __init__(self) -> None:
        self.overtaken = False


class ReadGuard:
    """Reads `source` for the cache; `changed(name)` makes reads of `name` in flight read again."""

    __slots__ = ("_in_flight", "_source")

    def __init__(self, source: SecretSource) -> None:
        self._source = source
        # Only reads in flight are tracked, so this holds nothing between reads.
        self._in_flight: dict[str, list[_Read]] = {}

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The secret `name` at `version` (None: the latest), never older than a change
        reported while the read was in flight."""
        if version:
            return await self._source.get(name, version)
        while True:
            read = _Read()
            self._in_flight.setdefault(name, []).append(read)
            try:
                record = await self._source.get(name)
            except NotFoundError:
                # Deleted when the read began, but re-created since: the not-found answer
                # would be cached as a negative entry.
                if read.overtaken:
                    continue
                raise
            finally:
                self._forget(name, read)
            if not read.overtaken:
                return record

    def changed(self, name: str) -> None:
        """A new version of `name` was seen: reads of it in flight must not answer."""
        for read in self._in_flight.get(name, ()):
            read.overtaken = True

    def _forget(self, name: str, read: _Read) -> None:
        reads = self._in_flight[name]
        reads.remove(read)
        if not reads:
            del self._in_flight[name]
