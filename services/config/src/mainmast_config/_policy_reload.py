"""The policy file, read at start and again whenever it changes.

A poll every few seconds compares the file's signature (inode, size, times); a changed file
is parsed, and when it is valid its policy replaces the old one at once, for the next
decision. A file that became invalid, unreadable or went missing keeps the old policy and
logs an error once per state of the file, so an operator's typo never locks every caller
out, nor lets anyone in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from mainmast.logging import get_logger

from ._file_signature import FileSignature, file_signature
from ._policy import AccessPolicy
from ._policy_file import PolicyFileError, PolicyProblem, load_policy_file

_FileState = tuple[FileSignature | None, str]

DEFAULT_POLICY_POLL_INTERVAL: Final = 5.0
"""Seconds between two looks at the policy file."""


class PolicyFile:
    """The access policy of the file at `path`; `load()` at start, then `start()` polling."""

    __slots__ = ("_interval", "_logger", "_path", "_policy", "_poller", "_sleep", "_state")

    def __init__(
        self,
        path: Path,
        *,
        poll_interval: float = DEFAULT_POLICY_POLL_INTERVAL,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("the policy file's poll interval is positive")
        self._path = path
        self._interval = poll_interval
        self._sleep = sleep
        self._policy: AccessPolicy | None = None
        # The file's signature when last looked at, and why it could not be read ("" if it could).
        self._state: _FileState = (None, "")
        self._poller: asyncio.Task[None] | None = None
        self._logger = get_logger("mainmast_config.policy")

    @property
    def path(self) -> Path:
        """The file."""
        return self._path

    @property
    def policy(self) -> AccessPolicy:
        """The policy in force; RuntimeError before `load()`."""
        if self._policy is None:
            raise RuntimeError("PolicyFile.load() has not run")
        return self._policy

    def load(self) -> AccessPolicy:
        """Read the file now; PolicyFileError when it is missing or invalid (at start, that
        stops the service: it must not serve with a policy other than the one named)."""
        signature = file_signature(self._path)
        if signature is None:
            missing = PolicyProblem(None, "(file)", "does not exist")
            raise PolicyFileError(str(self._path), [missing])
        policy = load_policy_file(self._path)
        self._policy, self._state = policy, (signature, "")
        return policy

    async def reload_if_changed(self) -> bool:
        """Read the file again if it changed; whether a new policy is in force."""
        try:
            state: _FileState = (await asyncio.to_thread(file_signature, self._path), "")
        except OSError as exc:
            state = (None, f"cannot be read ({exc.strerror})")
        if state == self._state:
            return False
        self._state = state
        signature, unreadable = state
        if signature is None:
            self._keep_old_policy(unreadable or "is missing")
            return False
        try:
            policy = await asyncio.to_thread(load_policy_file, self._path)
        except PolicyFileError as exc:
            self._keep_old_policy("is invalid", problems=[str(p) for p in exc.problems])
            return False
        self._policy = policy
        self._logger.info(
            "config.access_policy_reloaded", path=str(self._path), rules=len(policy.rules)
        )
        return True

    def start(self) -> None:
        """Look at the file every `poll_interval` seconds, in the background, until `aclose`."""
        self.policy  # noqa: B018 -- fails early when load() has not run
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever(), name="access-policy-poller")

    async def aclose(self) -> None:
        """Stop polling."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _poll_forever(self) -> None:
        while True:
            await self._sleep(self._interval)
            try:
                await self.reload_if_changed()
            except Exception:
                # The poller must outlive any surprise: the old policy stays in force.
                self._logger.exception("config.access_policy_check_failed", path=str(self._path))

    def _keep_old_policy(self, problem: str, *, problems: list[str] | None = None) -> None:
        self._logger.error(
            "config.access_policy_not_reloaded",
            path=str(self._path),
            problem=f"the policy file {problem}; the previous policy stays in force",
            problems=problems or [],
        )
