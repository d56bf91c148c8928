"""The config service as the runtime runs it: what it serves and how it is registered."""

from __future__ import annotations

from typing import ClassVar

import grpc.aio

from mainmast.config.v1 import config_service_pb2_grpc
from mainmast.runtime import Service

from .settings import ConfigSettings


class ConfigService(Service[ConfigSettings]):
    """`mainmast.config.v1.ConfigService` in one process.

    The contract's methods are implemented by the servicer of the config issue; until a
    method is, the generated base answers it with UNIMPLEMENTED, which is what gRPC
    clients expect of a method a server does not offer.
    """

    name: ClassVar[str] = "config"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.config.v1.ConfigService",)

    def register(self, server: grpc.aio.Server) -> None:
        """Add the ConfigService servicer to `server`."""
        # The generated base answers every method UNIMPLEMENTED until the servicer of this
        # service's issue overrides them; its stubs call it abstract for that reason.
        servicer = config_service_pb2_grpc.ConfigServiceServicer()  # type: ignore[abstract]
        config_service_pb2_grpc.add_ConfigServiceServicer_to_server(servicer, server)
