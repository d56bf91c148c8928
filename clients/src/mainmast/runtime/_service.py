"""How a service declares itself to the runtime."""

from __future__ import annotations

import abc
from typing import ClassVar, Generic, TypeVar

import grpc.aio
from prometheus_client import CollectorRegistry

from ._auth import Authenticate, validated_methods
from ._settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


class Service(abc.ABC, Generic[SettingsT]):
    """A gRPC service the runtime can run: subclass it and declare what it serves.

    Class attributes:

    - `name`: the short name, `"auth"`; the process is `mainmast-<name>`.
    - `service_names`: the full proto service names it serves, listed by reflection
      and reported SERVING by the health service, `("mainmast.auth.v1.AuthService",)`.
    - `exempt_methods`: full method paths the authentication hook skips,
      `frozenset({"/mainmast.auth.v1.AuthService/IssueToken"})`.

    Methods, called in this order: `startup()` opens the service's own resources (a
    DatabasePool, ...), `register(server)` adds its servicers, `authenticator()`
    returns the authentication hook (or None), `draining()` runs when the drain begins,
    and `shutdown()` closes the resources once in-flight calls are done (or the grace
    period is over).
    """

    name: ClassVar[str]
    service_names: ClassVar[tuple[str, ...]]
    exempt_methods: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings
        self.metrics_registry: CollectorRegistry | None = None
        """The registry the server's /metrics endpoint serves, set by the runtime before
        `startup()`: metrics a service registers there appear beside the server's own."""

    async def startup(self) -> None:
        """Open the service's own resources before the server starts."""

    @abc.abstractmethod
    def register(self, server: grpc.aio.Server) -> None:
        """Add the service's servicers to `server`."""

    def authenticator(self) -> Authenticate | None:
        """The hook that authenticates each call, or None to accept every caller."""
        return None

    async def draining(self) -> None:
        """End the calls that would never end by themselves (server streams that follow
        changes), when the drain begins: their clients then reconnect to another replica,
        and the drain does not wait out the grace period for them."""

    async def shutdown(self) -> None:
        """Close the service's own resources after the server stopped."""

    @classmethod
    def check_declaration(cls) -> None:
        """Raise TypeError unless the class declares a name and what it serves, and
        ValueError unless its exempt methods are full method paths."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} must declare name, for example 'auth'")
        service_names = getattr(cls, "service_names", None)
        if (
            not isinstance(service_names, tuple)
            or not service_names
            or not all(isinstance(item, str) and item for item in service_names)
        ):
            raise TypeError(
                f"{cls.__qualname__} must declare service_names, a tuple of full proto "
                "service names such as ('mainmast.auth.v1.AuthService',)"
            )
        validated_methods(cls.exempt_methods)
