"""What every secret backend offers: one small async protocol, and the record it returns.

A backend answers `get(name, version)` with a `SecretRecord` or raises one of the
taxonomy's errors: NotFoundError (reason SECRET_NOT_FOUND or SECRET_VERSION_NOT_FOUND) when
it does not have the name, UnavailableError (BACKEND_UNAVAILABLE or BACKEND_THROTTLED, with
`retry_after` when the backend says when to come back) when it is in trouble, and
FailedPreconditionError (BACKEND_ACCESS_DENIED) when it refuses the service's identity.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from ._errors import secret_version_not_found


class BackendKind(enum.StrEnum):
    """The kinds of backend; each is a value of `mainmast.config.v1.Backend` without prefix."""

    KEY_VAULT = "KEY_VAULT"
    """Azure Key Vault."""
    FILES = "FILES"
    """A directory of mounted files (Kubernetes secret volumes)."""
    ENVIRONMENT = "ENVIRONMENT"
    """The process environment."""
    DOTENV = "DOTENV"
    """A .env file."""


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One version of a secret as a backend returned it."""

    name: str
    """The name as applications ask for it."""
    value: str = field(repr=False)
    """The value; kept out of `repr` so that no log line of a record shows it."""
    version: str
    """The backend's version id, or a digest of the value for backends without versions."""
    backend: BackendKind
    """The backend that answered."""
    update_time: datetime | None = None
    """When this version was created, when the backend says."""
    expire_time: datetime | None = None
    """When the backend considers the secret expired, if ever."""
    content_type: str = ""
    """The content type the backend records, if any."""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """The backend's tags on the secret."""


@runtime_checkable
class SecretBackend(Protocol):
    """A source of secrets."""

    @property
    def kind(self) -> BackendKind:
        """Which kind of backend this is."""
        ...

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The secret `name` at `version` (None: the latest)."""
        ...

    async def list_names(self) -> list[str]:
        """The names of every secret this backend has, in no particular order."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (connections); it is not used afterwards."""
        ...


def digest_version(value: str) -> str:
    """The version of a value in a backend without versions: a digest of the value.

    32 hex digits of SHA-256 identify a version; the value cannot be read back from them,
    though a guessable value can be confirmed, as with any unkeyed digest.
    """
    return hashlib.sha256(b"mainmast-config-version\x00" + value.encode()).hexdigest()[:32]


def versionless_record(
    name: str, value: str, backend: BackendKind, version: str | None
) -> SecretRecord:
    """The record of a backend without versions: a `version` asked for must be the digest."""
    current = digest_version(value)
    if version and version != current:
        raise secret_version_not_found(name, version)
    return SecretRecord(name=name, value=value, version=current, backend=backend)
