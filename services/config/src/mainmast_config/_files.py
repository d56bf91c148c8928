"""Secrets from a directory of mounted files, one file per name (Kubernetes secret volumes).

`payments/stripe-key` is the file `<root>/payments/stripe-key`. Kubernetes mounts a secret
as symlinks `<key> -> ..data/<key>` and `..data -> ..<timestamp>/`, and swaps `..data`
atomically on an update; reading through the symlinks on every call sees the new value at
once. Entries whose names start with `.` (those internals among them) are never names.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

from ._backend import BackendKind, SecretRecord, versionless_record
from ._errors import backend_unavailable, secret_not_found
from ._names import name_problem


class FilesBackend:
    """Reads secrets from files under `root`; a value loses one trailing line break.

    The line break goes because `echo value > file` and editors add one that is not part of
    the secret; a value that needs one ends with two.
    """

    __slots__ = ("_root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root)

    @property
    def kind(self) -> BackendKind:
        """BackendKind.FILES."""
        return BackendKind.FILES

    @property
    def root(self) -> Path:
        """The directory read."""
        return self._root

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The content of the file of `name`; NotFoundError when there is none."""
        value = await asyncio.to_thread(self._read, name)
        return versionless_record(name, value, self.kind, version)

    async def list_names(self) -> list[str]:
        """The names of every readable file under the root."""
        return await asyncio.to_thread(self._walk)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _read(self, name: str) -> str:
        if name_problem(name) is not None:
            # A name that is not valid (`../x`) never names a file: nothing outside the root.
            raise secret_not_found(name)
        path = self._root / name
        try:
            if not self._inside_root(path):
                raise secret_not_found(name)
            content = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise secret_not_found(name) from exc
        except OSError as exc:
            raise backend_unavailable(self.kind, f"cannot read a file ({exc.strerror})") from exc
        try:
            text = content.decode()
        except UnicodeDecodeError as exc:
            raise backend_unavailable(self.kind, f"the file of {name!r} is not UTF-8") from exc
        return _without_one_line_break(text)

    def _inside_root(self, path: Path) -> bool:
        # Symlinks inside the volume (Kubernetes' own) are fine; one that leads out is not.
        try:
            resolved = path.resolve(strict=True)
        except RuntimeError as exc:  # Python before 3.13 reports a symlink loop this way
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path)) from exc
        return resolved.is_relative_to(self._root.resolve(strict=True))

    def _readable(self, path: Path) -> bool:
        try:
            return self._inside_root(path)
        except OSError:  # a dangling symlink, or one removed while listing
            return False

    def _walk(self) -> list[str]:
        names: list[str] = []
        try:
            for directory, subdirectories, files in os.walk(self._root, followlinks=True):
                subdirectories[:] = [entry for entry in subdirectories if not entry.startswith(".")]
                relative = Path(directory).relative_to(self._root)
                for file_name in files:
                    name = (relative / file_name).as_posix()
                    if name_problem(name) is None and self._readable(Path(directory, file_name)):
                        names.append(name)
        except OSError as exc:
            raise backend_unavailable(self.kind, f"cannot list files ({exc.strerror})") from exc
        return names


def _without_one_line_break(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
