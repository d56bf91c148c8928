"""The auth service as the runtime runs it: what it serves and how it is registered."""

from __future__ import annotations

from typing import ClassVar

import grpc.aio

from mainmast.auth.v1 import auth_service_pb2_grpc
from mainmast.runtime import Service

from .settings import AuthSettings


class AuthService(Service[AuthSettings]):
    """`mainmast.auth.v1.AuthService` in one process.

    The contract's methods are implemented by the servicer of the auth issue; until a
    method is, the generated base answers it with UNIMPLEMENTED, which is what gRPC
    clients expect of a method a server does not offer.
    """

    name: ClassVar[str] = "auth"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.auth.v1.AuthService",)

    def register(self, server: grpc.aio.Server) -> None:
        """Add the AuthService servicer to `server`."""
        # The generated base answers every method UNIMPLEMENTED until the servicer of this
        # service's issue overrides them; its stubs call it abstract for that reason.
        servicer = auth_service_pb2_grpc.AuthServiceServicer()  # type: ignore[abstract]
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
