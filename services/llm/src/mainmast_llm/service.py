"""The llm service as the runtime runs it: its resources, its servicer, its authentication."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import ClassVar, Final

import grpc.aio
import httpx
from prometheus_client import CollectorRegistry

from mainmast.db import DatabasePool
from mainmast.llm.v1 import llm_service_pb2_grpc
from mainmast.logging import get_logger
from mainmast.runtime import Authenticate, Metadata, Principal, Service

from ._ledger import UsageLedger
from ._ledger_migrations import migrate_database
from ._limits import QuotaPolicy
from ._quota import TenantQuotas
from ._quota_stores import open_quota_store
from ._router import Router
from ._routing import RoutingTable, default_routing, load_routing
from ._routing_adapters import build_adapters
from ._servicer import LlmServicer, tracked_adapters
from ._usage import PriceTable
from .settings import LlmSettings

DEV_PRINCIPAL: Final = Principal(tenant="dev", subject="dev-unauthenticated-caller")
"""Who every caller is when the service has no authenticator: named so nobody mistakes it."""


async def authenticate_as_dev_principal(method: str, metadata: Metadata) -> Principal:
    """The zero-config authentication hook: every caller is DEV_PRINCIPAL, unchecked."""
    return DEV_PRINCIPAL


class LlmService(Service[LlmSettings]):
    """`mainmast.llm.v1.LlmService` in one process.

    `startup()` loads the routing file (or the zero-config dev routing), opens one pooled
    HTTP client for every provider adapter, the quota store, the ledger's database
    (migrated) and the usage ledger; `shutdown()` flushes the ledger and closes them all.

    `authenticate` is the hook that turns a call's metadata into a Principal; without one
    every caller is DEV_PRINCIPAL, which the startup log says loudly. `registry` takes
    the ledger's metrics (when None, the server's, so they appear on its /metrics);
    `environ` is where `{env: NAME}` provider keys are read (the process environment when
    None).
    """

    name: ClassVar[str] = "llm"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.llm.v1.LlmService",)

    def __init__(
        self,
        settings: LlmSettings,
        *,
        authenticate: Authenticate | None = None,
        registry: CollectorRegistry | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(settings)
        self._authenticate = authenticate
        self._registry = registry
        self._environ = environ
        self._resources = contextlib.AsyncExitStack()
        self._servicer: LlmServicer | None = None

    @property
    def servicer(self) -> LlmServicer:
        """The servicer `startup()` built; RuntimeError before it."""
        if self._servicer is None:
            raise RuntimeError("LlmService.startup() has not run")
        return self._servicer

    def routing(self) -> RoutingTable:
        """The routing the settings name, priced in the settings' currency."""
        path = self.settings.routing_file
        routing = default_routing() if path is None else load_routing(path)
        prices = PriceTable(routing.prices.prices, currency_code=self.settings.price_currency)
        return dataclasses.replace(routing, prices=prices)

    async def startup(self) -> None:
        """Open the router, quota store, ledger database and ledger; see the class docstring."""
        logger = get_logger("mainmast_llm.service")
        routing = self.routing()
        try:
            client = httpx.AsyncClient(
                # Each adapter bounds its call by the deployment's timeout and the call's
                # deadline, so the client adds no timeouts of its own.
                timeout=httpx.Timeout(None),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
                trust_env=self.settings.http_trust_env,
            )
            self._resources.push_async_callback(client.aclose)
            adapters = await build_adapters(routing, client, environ=self._environ)
            router = Router(routing, tracked_adapters(adapters))
            store = await open_quota_store(self.settings.quota_store_url)
            self._resources.push_async_callback(store.close)
            quotas = TenantQuotas(store, QuotaPolicy(default=self.settings.tenant_limits()))
            pool = DatabasePool(self.settings.database_target())
            self._resources.push_async_callback(pool.close)
            await migrate_database(pool)
            ledger = UsageLedger(pool, registry=self._registry or self.metrics_registry)
            await ledger.start()
            self._resources.push_async_callback(
                ledger.close, flush_timeout=self.settings.ledger_flush_timeout_seconds
            )
        except BaseException:
            await self._resources.aclose()
            raise
        self._servicer = LlmServicer(
            routing=routing, router=router, quotas=quotas, ledger=ledger, ledger_pool=pool
        )
        if self._authenticate is None:
            logger.warning(
                "llm.unauthenticated",
                detail="no authenticator configured: every caller is the dev principal",
                tenant=DEV_PRINCIPAL.tenant,
                subject=DEV_PRINCIPAL.subject,
            )
        logger.info("llm.ready", models=sorted(routing.aliases), quota_store=repr(store))

    def register(self, server: grpc.aio.Server) -> None:
        """Add the LlmService servicer to `server` (after `startup()`)."""
        llm_service_pb2_grpc.add_LlmServiceServicer_to_server(self.servicer, server)

    def authenticator(self) -> Authenticate:
        """The configured hook, or the dev principal's when there is none."""
        return self._authenticate or authenticate_as_dev_principal

    async def shutdown(self) -> None:
        """Flush the ledger, then close its database, the quota store and the HTTP client."""
        self._servicer = None
        await self._resources.aclose()
