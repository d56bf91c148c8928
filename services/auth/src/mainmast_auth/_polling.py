"""Calling a refresh every interval in a background task: how a replica follows the store.

`PolicySync` and `AccessStateSync` each read a one-row version counter this way and
reload only when it moved, so following other replicas' changes costs one indexed
single-row read per interval while nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Final

from mainmast.logging import get_logger

DEFAULT_POLL_INTERVAL: Final = 0.25
"""Seconds between two reads of a version: changes propagate well within 1 s."""


class Poller:
    """Awaits `refresh()` every `interval` seconds between `start()` and `stop()`.

    A failing refresh (the database hiccuped) is logged as `failure_event` and retried at
    the next interval; it never stops the polling.
    """

    __slots__ = ("_failure_event", "_interval", "_log", "_name", "_refresh", "_task")

    def __init__(
        self,
        refresh: Callable[[], Awaitable[object]],
        *,
        interval: float,
        name: str,
        failure_event: str,
    ) -> None:
        if interval <= 0:
            raise ValueError("poll_interval must be positive")
        self._refresh = refresh
        self._interval = interval
        self._name = name
        self._failure_event = failure_event
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger("mainmast_auth.polling")

    async def start(self) -> None:
        """Await `refresh()` once (the first load: a failure here is raised), then poll in a
        background task of the running event loop."""
        self._not_running()
        await self._refresh()
        self._not_running()  # again: another start may have finished during the await
        self._task = asyncio.create_task(self._poll(), name=self._name)

    def _not_running(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self._name} is already running")

    async def stop(self) -> None:
        """Stop polling and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._refresh()
            except Exception:  # noqa: BLE001 -- a database hiccup must not stop the polling
                self._log.warning(self._failure_event, exc_info=True)
