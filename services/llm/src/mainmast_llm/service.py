"""The llm service as the runtime runs it: its resources, its servicer, its authentication."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import grpc.aio
from prometheus_client import CollectorRegistry

from mainmast.auth import CallerAuthentication
from mainmast.db import DatabasePool
from mainmast.llm.v1 import llm_service_pb2_grpc
from mainmast.logging import get_logger
from mainmast.runtime import Authenticate, Service

from ._config_secrets import ConfigServiceSecrets
from ._http_client import provider_http_client
from ._ledger import UsageLedger
from ._ledger_migrations import migrate_database
from ._limits import QuotaPolicy
from ._provider_keys import SecretSource
from ._quota import TenantQuotas
from ._quota_stores import open_quota_store
from ._router import Router
from ._routing import RoutingTable, default_routing, load_routing
from ._routing_adapters import build_adapters
from ._servicer import LlmServicer
from ._usage import PriceTable
from .settings import LlmSettings


class LlmService(Service[LlmSettings]):
    """`mainmast.llm.v1.LlmService` in one process.

    `startup()` starts the callers' authentication (connecting to the auth service in
    the background), loads the routing file (or the zero-config dev routing), opens one
    pooled HTTP client for every provider adapter, the quota store, the ledger's database
    (migrated) and the usage ledger; `shutdown()` flushes the ledger and closes them all.

    Every call is authenticated by its bearer token (see `CallerAuthSettings`; with
    `auth_required=false` every caller is the dev principal, which the startup log says
    loudly) and its permissions are checked as `LlmServicer` says. `registry` takes the
    ledger's metrics (when None, the server's, so they appear on its /metrics). Provider
    keys written `{env: NAME}` are read from `environ` (the process environment when
    None), keys written `{secret: NAME}` from `secrets`, else from the config service at
    `config_target` (a client opened at startup, without waiting for that service, and
    closed at shutdown); with neither, a routing file that names a secret does not start.
    """

    name: ClassVar[str] = "llm"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.llm.v1.LlmService",)

    def __init__(
        self,
        settings: LlmSettings,
        *,
        registry: CollectorRegistry | None = None,
        environ: Mapping[str, str] | None = None,
        secrets: SecretSource | None = None,
    ) -> None:
        super().__init__(settings)
        self._registry = registry
        self._environ = environ
        self._secrets = secrets
        self._callers = CallerAuthentication(settings)
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
            await self._callers.start()
            self._resources.push_async_callback(self._callers.close)
            secrets = await self._open_secrets(routing)
            client = provider_http_client(trust_env=self.settings.http_trust_env)
            self._resources.push_async_callback(client.aclose)
            adapters = await build_adapters(routing, client, environ=self._environ, secrets=secrets)
            router = Router(routing, adapters)
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
            routing=routing,
            router=router,
            quotas=quotas,
            ledger=ledger,
            ledger_pool=pool,
            callers=self._callers,
        )
        logger.info(
            "llm.ready",
            models=sorted(routing.aliases),
            quota_store=repr(store),
            auth_required=self._callers.required,
        )

    async def _open_secrets(self, routing: RoutingTable) -> SecretSource | None:
        """Where `{secret: NAME}` keys are read: the source given, else the config service
        the settings name (its client closed with the other resources), else nowhere."""
        if self._secrets is not None or not self.settings.config_target:
            return self._secrets
        names = routing.config_secret_names()
        secrets = ConfigServiceSecrets.from_settings(self.settings, watched=names)
        self._resources.push_async_callback(secrets.close)
        await secrets.start()
        get_logger("mainmast_llm.service").info(
            "llm.provider_keys_from_config_service",
            config_target=secrets.target,
            secret_names=names,
            service_account=self.settings.config_client_id or None,
        )
        return secrets

    def register(self, server: grpc.aio.Server) -> None:
        """Add the LlmService servicer to `server` (after `startup()`)."""
        llm_service_pb2_grpc.add_LlmServiceServicer_to_server(self.servicer, server)

    def authenticator(self) -> Authenticate:
        """Each caller's Principal from its bearer token (the dev principal in dev mode)."""
        return self._callers.authenticator()

    async def shutdown(self) -> None:
        """Flush the ledger, then close its database, the quota store, the HTTP client, the
        config service's client and the callers' authentication."""
        self._servicer = None
        await self._resources.aclose()
