"""One subscriber of the secret watch: an async iterator of changes that never blocks the
watcher.

The watcher offers each change without waiting; the subscription keeps at most one pending
change per name (the latest), so its backlog is bounded by the number of names it watches
and a slow reader skips intermediate versions instead of losing the last one. A change to a
version the subscriber already holds cancels what is pending for that name: it is told only
what differs from what it has.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from ._backend import SecretRecord


class ChangeType(enum.StrEnum):
    """What happened to a secret; each is a `WatchSecretsResponse.ChangeType` without prefix."""

    UPDATED = "UPDATED"
    """The secret has a version the subscriber does not hold."""
    DELETED = "DELETED"
    """No backend has the secret any more."""


@dataclass(frozen=True, slots=True)
class SecretChange:
    """A change of one watched secret."""

    name: str
    """The secret's name."""
    record: SecretRecord | None = field(repr=False)
    """The new version, value included; None when the secret was deleted."""

    @property
    def change_type(self) -> ChangeType:
        """UPDATED or DELETED."""
        return ChangeType.DELETED if self.record is None else ChangeType.UPDATED

    @property
    def version(self) -> str:
        """The new version; empty when the secret was deleted."""
        return "" if self.record is None else self.record.version


class WatchSubscription:
    """Changes of `names`, from the versions in `known_versions` on; iterate it, then close it.

    Made by `SecretWatcher.subscribe`; usable as an async context manager that closes it.
    """

    __slots__ = ("_ended", "_held", "_names", "_on_close", "_pending", "_wakeup")

    def __init__(
        self,
        names: frozenset[str],
        known_versions: Mapping[str, str],
        on_close: Callable[[WatchSubscription], None],
    ) -> None:
        self._names = names
        # "" stands for "holds nothing": a missing name, or a deleted secret.
        self._held = {name: known_versions.get(name, "") for name in names}
        self._on_close = on_close
        self._pending: OrderedDict[str, SecretChange] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._ended = False

    @property
    def names(self) -> frozenset[str]:
        """The names watched."""
        return self._names

    @property
    def pending(self) -> int:
        """How many changes wait to be read (at most one per name)."""
        return len(self._pending)

    @property
    def held_versions(self) -> dict[str, str]:
        """The version of each name the subscriber holds ("" for none): what it was told last,
        or what it said it knew."""
        return dict(self._held)

    def offer(self, change: SecretChange) -> None:
        """Queue `change` unless the subscriber holds its version already; never waits."""
        if self._ended or change.name not in self._names:
            return
        if change.version == self._held[change.name]:
            # Back to what the subscriber holds (a rotation undone before it read it).
            self._pending.pop(change.name, None)
            return
        # Replacing in place keeps the name's turn: the oldest pending name is read first.
        self._pending[change.name] = change
        self._wakeup.set()

    def end(self) -> None:
        """End the stream after what is pending (the watcher is closing)."""
        self._ended = True
        self._wakeup.set()

    def close(self) -> None:
        """Stop at once: drop what is pending and leave the watcher."""
        if not self._ended:
            self._ended = True
            self._on_close(self)
        self._pending.clear()
        self._wakeup.set()

    async def aclose(self) -> None:
        """`close`, for `contextlib.aclosing` and async generator habits."""
        self.close()

    def __aiter__(self) -> WatchSubscription:
        """The subscription itself."""
        return self

    async def __anext__(self) -> SecretChange:
        """The next change; waits while there is none; ends when the subscription ends."""
        while True:
            if self._pending:
                name, change = self._pending.popitem(last=False)
                self._held[name] = change.version
                return change
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    async def __aenter__(self) -> WatchSubscription:
        """The subscription itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the subscription."""
        self.close()
