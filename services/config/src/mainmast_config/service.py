"""The config service as the runtime runs it: its resources, its servicer, its authentication."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import grpc.aio

from mainmast.auth import CallerAuthentication
from mainmast.config.v1 import config_service_pb2_grpc
from mainmast.logging import get_logger
from mainmast.runtime import Authenticate, Service

from ._backend import SecretBackend
from ._backends_from_settings import backends_from_settings
from ._cache import SecretCache
from ._chain import BackendChain
from ._policy import AccessPolicy
from ._policy_reload import PolicyFile
from ._servicer import ConfigServicer, FixedPolicy, PolicySource
from ._watch import SecretWatcher
from ._watch_guard import ReadGuard
from .settings import ConfigSettings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential


class ConfigService(Service[ConfigSettings]):
    """`mainmast.config.v1.ConfigService` in one process.

    `startup()` reads the access policy (a bad policy file stops the start, naming the line),
    builds the backend chain, the cache in front of it and the watch, and starts connecting
    to the auth service in the background; `shutdown()` closes them. Callers are
    authenticated by their mainmast access tokens (`CallerAuthentication`); with
    `auth_required=false` every caller is the dev principal and reads everything.

    `backends` replaces the chain the settings describe, `key_vault_credential` the vault
    credential they choose, `environ` the environment the env backend reads, and
    `callers` the caller authentication (tests, embedding).
    """

    name: ClassVar[str] = "config"
    service_names: ClassVar[tuple[str, ...]] = ("mainmast.config.v1.ConfigService",)

    def __init__(
        self,
        settings: ConfigSettings,
        *,
        backends: Sequence[SecretBackend] | None = None,
        key_vault_credential: AsyncTokenCredential | None = None,
        environ: Mapping[str, str] | None = None,
        callers: CallerAuthentication | None = None,
    ) -> None:
        super().__init__(settings)
        self._backends = backends
        self._key_vault_credential = key_vault_credential
        self._environ = environ
        self._callers = callers
        self._resources = contextlib.AsyncExitStack()
        self._servicer: ConfigServicer | None = None
        self._cache: SecretCache | None = None
        self._watcher: SecretWatcher | None = None

    @property
    def servicer(self) -> ConfigServicer:
        """The servicer `startup()` built; RuntimeError before it."""
        if self._servicer is None:
            raise RuntimeError("ConfigService.startup() has not run")
        return self._servicer

    @property
    def cache(self) -> SecretCache:
        """The service's secret cache; RuntimeError before `startup()`."""
        if self._cache is None:
            raise RuntimeError("ConfigService.startup() has not run")
        return self._cache

    @property
    def callers(self) -> CallerAuthentication:
        """The caller authentication; RuntimeError before `startup()`."""
        if self._callers is None:
            raise RuntimeError("ConfigService.startup() has not run")
        return self._callers

    async def startup(self) -> None:
        """Read the policy, build chain, cache and watch, start the caller authentication."""
        settings = self.settings
        logger = get_logger("mainmast_config.service")
        try:
            policy = self._policy_source()
            backends = self._backends or backends_from_settings(
                settings, key_vault_credential=self._key_vault_credential, environ=self._environ
            )
            chain = BackendChain(backends)
            self._resources.push_async_callback(chain.aclose)
            guard = ReadGuard(chain)
            cache = SecretCache(guard, settings.cache_options())
            self._resources.push_async_callback(cache.aclose)
            watcher = SecretWatcher(
                chain,
                interval=settings.watch_poll_interval_seconds,
                cache=cache,
                read_guard=guard,
            )
            # Closed before the cache and chain (the stack unwinds in reverse), so every
            # watch stream ends before its backends go.
            self._resources.push_async_callback(watcher.aclose)
            watcher.start()
            if isinstance(policy, PolicyFile):
                self._resources.push_async_callback(policy.aclose)
                policy.start()
            callers = self._callers = self._callers or CallerAuthentication(settings)
            self._resources.push_async_callback(callers.close)
            await callers.start()
        except BaseException:
            await self._resources.aclose()
            raise
        self._cache = cache
        self._watcher = watcher
        self._servicer = ConfigServicer(chain=chain, cache=cache, watcher=watcher, policy=policy)
        logger.info(
            "config.ready",
            backends=[backend.kind.value for backend in chain.backends],
            access_policy=policy.policy.source,
            access_rules=len(policy.policy.rules),
            auth_required=settings.auth_required,
        )

    def register(self, server: grpc.aio.Server) -> None:
        """Add the ConfigService servicer to `server` (after `startup()`)."""
        config_service_pb2_grpc.add_ConfigServiceServicer_to_server(self.servicer, server)

    def authenticator(self) -> Authenticate:
        """Callers' bearer tokens verified locally (or the dev principal, when not required)."""
        return self.callers.authenticator()

    async def draining(self) -> None:
        """End every WatchSecrets stream (after what is pending for it): a stream never ends
        by itself, and its client resumes on another replica with the versions it holds."""
        if self._watcher is not None:
            await self._watcher.aclose()

    async def shutdown(self) -> None:
        """Close the watch, the cache, the backends and the auth client."""
        self._servicer = None
        self._cache = None
        self._watcher = None
        await self._resources.aclose()

    def _policy_source(self) -> PolicySource:
        settings = self.settings
        logger = get_logger("mainmast_config.service")
        if not settings.auth_required:
            if settings.access_policy_file is not None:
                logger.warning(
                    "config.access_policy_ignored",
                    path=str(settings.access_policy_file),
                    detail="auth_required is off: every caller is the dev principal, reads all",
                )
            return FixedPolicy(AccessPolicy.everyone("dev mode: every caller reads everything"))
        if settings.access_policy_file is None:
            policy = AccessPolicy.platform_admins_only()
            logger.warning(
                "config.access_policy_default",
                detail=(
                    "no access policy file (MAINMAST_CONFIG_ACCESS_POLICY_FILE): only callers "
                    "holding roles/platform-admin read secrets and settings"
                ),
            )
            return FixedPolicy(policy)
        policy_file = PolicyFile(
            settings.access_policy_file, poll_interval=settings.access_policy_poll_interval_seconds
        )
        policy_file.load()
        return policy_file
