"""An ordered chain of backends: the first that has a name answers.

A backend that does not have the name (SECRET_NOT_FOUND) passes to the next. A backend in
trouble stops the chain with its error rather than letting a later backend answer: falling
through would silently swap a vault's production value for a developer's .env default, and
the cache in front rides out the trouble with its stale entry instead. A backend that has
the name but not the version asked for (SECRET_VERSION_NOT_FOUND) answers too.

A backend that said when to come back (Retry-After on a 429 or 503) is not called again
before then: the chain answers for it with the same error, its `retry_after` shortened to
what is left.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from mainmast.errors import MainmastError, NotFoundError

from ._backend import BackendKind, SecretBackend, SecretRecord
from ._errors import ConfigErrorReason, secret_not_found
from ._names import check_name


@dataclass(slots=True)
class _HoldOff:
    until: float
    error: MainmastError


class BackendChain:
    """Asks `backends` in order; `clock` (monotonic seconds) times Retry-After hold-offs."""

    __slots__ = ("_backends", "_clock", "_hold_offs")

    def __init__(
        self, backends: Sequence[SecretBackend], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not backends:
            raise ValueError("a backend chain needs at least one backend")
        kinds = [backend.kind for backend in backends]
        if len(set(kinds)) != len(kinds):
            # Answers name their backend by kind: two of one kind would be indistinguishable.
            raise ValueError("a backend chain has at most one backend of each kind")
        self._backends = tuple(backends)
        self._clock = clock
        self._hold_offs: dict[BackendKind, _HoldOff] = {}

    @property
    def backends(self) -> tuple[SecretBackend, ...]:
        """The backends, in the order they are asked."""
        return self._backends

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The secret `name` from the first backend that has it; the record names the backend.

        ValidationError for an invalid name; NotFoundError when no backend has it; a
        backend's own error when it fails before one has answered.
        """
        check_name(name)
        for backend in self._backends:
            self._raise_if_held_off(backend.kind)
            try:
                return await backend.get(name, version or None)
            except NotFoundError as exc:
                if exc.reason != ConfigErrorReason.SECRET_NOT_FOUND:
                    raise
            except MainmastError as exc:
                self._hold_off_if_asked(backend.kind, exc)
                raise
        raise secret_not_found(name)

    async def list_names(self) -> list[tuple[str, BackendKind]]:
        """Every name any backend has, sorted, each with the backend that answers for it."""
        answering: dict[str, BackendKind] = {}
        for backend in self._backends:
            self._raise_if_held_off(backend.kind)
            try:
                names = await backend.list_names()
            except MainmastError as exc:
                self._hold_off_if_asked(backend.kind, exc)
                raise
            for name in names:
                answering.setdefault(name, backend.kind)
        return sorted(answering.items())

    async def aclose(self) -> None:
        """Close every backend."""
        for backend in self._backends:
            await backend.aclose()

    def _raise_if_held_off(self, kind: BackendKind) -> None:
        hold_off = self._hold_offs.get(kind)
        if hold_off is None:
            return
        left = hold_off.until - self._clock()
        if left <= 0:
            del self._hold_offs[kind]
            return
        # A copy: raising the stored instance again would pile up its traceback.
        error = copy.copy(hold_off.error)
        error.retry_after = timedelta(seconds=left)
        raise error

    def _hold_off_if_asked(self, kind: BackendKind, error: MainmastError) -> None:
        if error.retry_after is not None and error.retry_after.total_seconds() > 0:
            until = self._clock() + error.retry_after.total_seconds()
            self._hold_offs[kind] = _HoldOff(until=until, error=error)
