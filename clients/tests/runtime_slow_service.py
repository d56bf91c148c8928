"""A service process for the shutdown tests: `python runtime_slow_service.py serve ...`.

`Slow` answers only once the process receives SIGUSR1 (after it logged "slow call
started"), so a test can hold a call in flight while it sends SIGTERM or SIGINT.
`Fast` answers at once. Requests and responses are raw bytes.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import grpc
import grpc.aio
from pydantic_settings import SettingsConfigDict

from mainmast.logging import get_logger
from mainmast.runtime import Service, ServiceSettings, service_cli

SERVICE = "mainmast.test.v1.SlowService"


class SlowSettings(ServiceSettings):
    """Settings of the test service, from MAINMAST_SLOW_*."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_SLOW_")


class SlowService(Service[SlowSettings]):
    """Holds `Slow` calls until SIGUSR1."""

    name = "slow"
    service_names = (SERVICE,)

    async def startup(self) -> None:
        self.release = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.release.set)

    async def shutdown(self) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)

    async def slow(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        get_logger(__name__).info("slow call started")
        await self.release.wait()
        return b"slow " + request

    async def fast(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return b"fast " + request

    def register(self, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
                        "Fast": grpc.unary_unary_rpc_method_handler(self.fast),
                    },
                ),
            )
        )


if __name__ == "__main__":
    service_cli(SlowService, SlowSettings)()
