"""Secrets from a .env file (python-dotenv), read again whenever the file changes."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from ._backend import BackendKind, SecretRecord, versionless_record
from ._errors import backend_unavailable, secret_not_found
from ._file_signature import FileSignature, file_signature
from ._names import environment_variable, name_of_environment_variable


@dataclass(frozen=True, slots=True)
class _Snapshot:
    signature: FileSignature | None
    values: dict[str, str]


class DotenvBackend:
    """Reads secrets from a .env file; keys are spelled as environment variables are.

    A missing file is an empty backend (a fresh checkout has none), so the zero
    configuration of env + .env works anywhere. The file is parsed again when its inode,
    size or modification time changes; keys without a value (`KEY` alone) are not set, and
    values are taken as written (no `${VAR}` interpolation from the environment).
    """

    __slots__ = ("_lock", "_path", "_prefix", "_snapshot")

    def __init__(self, path: str | os.PathLike[str] = ".env", *, prefix: str = "") -> None:
        self._path = Path(path)
        self._prefix = prefix
        self._snapshot = _Snapshot(signature=None, values={})
        self._lock = asyncio.Lock()

    @property
    def kind(self) -> BackendKind:
        """BackendKind.DOTENV."""
        return BackendKind.DOTENV

    @property
    def path(self) -> Path:
        """The file read."""
        return self._path

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The value of the key that holds `name`; NotFoundError when the file has none."""
        values = await self._current_values()
        value = values.get(environment_variable(name, self._prefix))
        if value is None:
            raise secret_not_found(name)
        return versionless_record(name, value, self.kind, version)

    async def list_names(self) -> list[str]:
        """The names the file's keys hold."""
        values = await self._current_values()
        names = (name_of_environment_variable(key, self._prefix) for key in values)
        return [name for name in names if name is not None]

    async def aclose(self) -> None:
        """Nothing to release."""

    async def _current_values(self) -> dict[str, str]:
        signature = self._signature()
        if signature == self._snapshot.signature:
            return self._snapshot.values
        async with self._lock:
            signature = self._signature()
            if signature != self._snapshot.signature:
                values = {} if signature is None else await asyncio.to_thread(self._parse)
                self._snapshot = _Snapshot(signature=signature, values=values)
            return self._snapshot.values

    def _signature(self) -> FileSignature | None:
        try:
            return file_signature(self._path)
        except OSError as exc:
            raise backend_unavailable(
                self.kind, f"cannot read the .env file ({exc.strerror})"
            ) from exc

    def _parse(self) -> dict[str, str]:
        try:
            parsed = dotenv_values(self._path, interpolate=False)
        except (OSError, UnicodeDecodeError) as exc:
            raise backend_unavailable(self.kind, "cannot read the .env file") from exc
        return {key: value for key, value in parsed.items() if value is not None}
