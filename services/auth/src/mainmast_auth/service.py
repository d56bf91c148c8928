"""The auth service as the runtime runs it: what it serves and how it is registered."""

from __future__ import annotations

from typing import ClassVar

import grpc.aio

from mainmast.auth.v1 import auth_service_pb2_grpc
from mainmast.db import DatabasePool
from mainmast.runtime import Service

from ._store_migrations import migrate_database
from .settings import AuthSettings


class AuthService(Service[AuthSettings]):
    """`mainmast.auth.v1.AuthService` in one process.

    `startup()` opens the database named by the settings and brings its schema up to date;
    `shutdown()` closes it. The contract's methods are implemented by the servicer of the
    auth issue; until a method is, the generated base answers it with UNIMPLEMENTED, which
    is what gRPC clients expect of a method a server does not offer.
    """

    name: ClassVar[str] = "auth"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.auth.v1.AuthService",)

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        self._database: DatabasePool | None = None

    @property
    def database(self) -> DatabasePool:
        """The service's database pool; RuntimeError before `startup()` or after `shutdown()`."""
        if self._database is None:
            raise RuntimeError(
                "the auth service's database is open only between startup and shutdown"
            )
        return self._database

    async def startup(self) -> None:
        """Open the database pool and apply any pending migrations."""
        database = DatabasePool(self.settings.database_target())
        try:
            await migrate_database(database)
            await database.start()
        except BaseException:
            await database.close()
            raise
        self._database = database

    def register(self, server: grpc.aio.Server) -> None:
        """Add the AuthService servicer to `server`."""
        # The generated base answers every method UNIMPLEMENTED until the servicer of this
        # service's issue overrides them; its stubs call it abstract for that reason.
        servicer = auth_service_pb2_grpc.AuthServiceServicer()  # type: ignore[abstract]
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)

    async def shutdown(self) -> None:
        """Close the database pool."""
        database, self._database = self._database, None
        if database is not None:
            await database.close()
