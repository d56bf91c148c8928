"""What ConfigClient returns: frozen dataclasses, never protobuf messages."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from mainmast._proto_values import enum_member, optional_time

from .v1 import config_service_pb2, resources_pb2


class Backend(enum.StrEnum):
    """Where the service found a value; `mainmast.config.v1.Backend` without its prefix."""

    UNSPECIFIED = "UNSPECIFIED"
    """The service did not say (an older or a foreign server)."""
    KEY_VAULT = "KEY_VAULT"
    """Azure Key Vault."""
    FILES = "FILES"
    """A directory of mounted files."""
    ENVIRONMENT = "ENVIRONMENT"
    """The service's environment variables."""
    DOTENV = "DOTENV"
    """A .env file."""

    @classmethod
    def from_proto(cls, value: resources_pb2.Backend.ValueType) -> Backend:
        """The member of a wire value; values this client does not know read as UNSPECIFIED."""
        return enum_member(cls, resources_pb2.Backend.Name, value, "BACKEND_")


class CacheState(enum.StrEnum):
    """How the service's cache answered; `mainmast.config.v1.CacheState` without its prefix."""

    UNSPECIFIED = "UNSPECIFIED"
    """The service did not say."""
    MISS = "MISS"
    """Read from the backend during the call."""
    HIT = "HIT"
    """A fresh cache entry."""
    STALE_WHILE_REVALIDATE = "STALE_WHILE_REVALIDATE"
    """An entry near its expiry, while the service refreshes it."""
    STALE_IF_ERROR = "STALE_IF_ERROR"
    """An expired entry, because the backend failed."""

    @classmethod
    def from_proto(cls, value: resources_pb2.CacheState.ValueType) -> CacheState:
        """The member of a wire value; values this client does not know read as UNSPECIFIED."""
        return enum_member(cls, resources_pb2.CacheState.Name, value, "CACHE_STATE_")


class ChangeType(enum.StrEnum):
    """What happened to a watched secret."""

    UPDATED = "UPDATED"
    """It has a version the watcher did not hold; the change carries it."""
    DELETED = "DELETED"
    """No backend has it any more."""


@dataclass(frozen=True, slots=True)
class SecretValue:
    """One read of a secret: its value and where it came from."""

    name: str
    """The secret's name."""
    value: str = field(repr=False)
    """The value; kept out of `repr`, and masked in every log line of the process."""
    version: str
    """The version the value belongs to."""
    backend: Backend
    """The backend that answered."""
    cache_state: CacheState
    """How the service's cache answered when the value was fetched."""
    ttl: timedelta
    """How long the value could be cached when it was fetched (the service's entry's rest)."""
    fetch_time: datetime | None
    """When the service read the value from its backend."""

    @classmethod
    def from_proto(cls, message: resources_pb2.SecretValue) -> SecretValue:
        """The value a SecretValue message carries."""
        return cls(
            name=message.name,
            value=message.value,
            version=message.version,
            backend=Backend.from_proto(message.backend),
            cache_state=CacheState.from_proto(message.cache_state),
            ttl=message.ttl.ToTimedelta(),
            fetch_time=optional_time(message, "fetch_time"),
        )


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    """What is known of a secret, without its value (a ListSecrets item)."""

    name: str
    """The secret's name."""
    version: str
    """The current version; empty when the service could not read it just now."""
    backend: Backend
    """The backend the secret comes from."""
    update_time: datetime | None = None
    """When the current version was created, when the backend says."""
    expire_time: datetime | None = None
    """When the backend considers the secret expired; None when never."""
    content_type: str = ""
    """The content type the backend records."""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """The backend's tags on the secret."""

    @classmethod
    def from_proto(cls, message: resources_pb2.Secret) -> SecretMetadata:
        """The metadata a Secret message carries."""
        return cls(
            name=message.name,
            version=message.version,
            backend=Backend.from_proto(message.backend),
            update_time=optional_time(message, "update_time"),
            expire_time=optional_time(message, "expire_time"),
            content_type=message.content_type,
            labels=MappingProxyType(dict(message.labels)),
        )


@dataclass(frozen=True, slots=True)
class SecretChange:
    """A change of a watched secret."""

    name: str
    """The secret's name."""
    change_type: ChangeType
    """Updated or deleted."""
    secret: SecretValue | None
    """The new value; None when the secret was deleted."""

    @property
    def version(self) -> str:
        """The new version; empty when the secret was deleted."""
        return "" if self.secret is None else self.secret.version

    @classmethod
    def from_proto(cls, message: config_service_pb2.WatchSecretsResponse) -> SecretChange:
        """The change a WatchSecretsResponse carries."""
        if (
            message.change_type == config_service_pb2.WatchSecretsResponse.CHANGE_TYPE_DELETED
            or not message.HasField("secret")
        ):
            return cls(name=message.name, change_type=ChangeType.DELETED, secret=None)
        return cls(
            name=message.name,
            change_type=ChangeType.UPDATED,
            secret=SecretValue.from_proto(message.secret),
        )
