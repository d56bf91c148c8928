"""The llm service as the runtime runs it: what it serves and how it is registered."""

from __future__ import annotations

from typing import ClassVar

import grpc.aio

from mainmast.llm.v1 import llm_service_pb2_grpc
from mainmast.runtime import Service

from .settings import LlmSettings


class LlmService(Service[LlmSettings]):
    """`mainmast.llm.v1.LlmService` in one process.

    The contract's methods are implemented by the servicer of the llm issue; until a
    method is, the generated base answers it with UNIMPLEMENTED, which is what gRPC
    clients expect of a method a server does not offer.
    """

    name: ClassVar[str] = "llm"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.llm.v1.LlmService",)

    def register(self, server: grpc.aio.Server) -> None:
        """Add the LlmService servicer to `server`."""
        # The generated base answers every method UNIMPLEMENTED until the servicer of this
        # service's issue overrides them; its stubs call it abstract for that reason.
        servicer = llm_service_pb2_grpc.LlmServiceServicer()  # type: ignore[abstract]
        llm_service_pb2_grpc.add_LlmServiceServicer_to_server(servicer, server)
