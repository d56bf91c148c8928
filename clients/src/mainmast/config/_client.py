"""`ConfigClient`: the typed async face of `mainmast.config.v1.ConfigService`.

One grpc.aio channel per client, made by `connect()` (or `async with`) inside the event
loop that uses it; in a FastAPI application, in the lifespan. Every call carries the
client's bearer token: a fixed token, or an async provider asked before each call, so a
service account's token can be refreshed. Every failure arrives as a `mainmast.errors`
class with the service's reason.

Secret values and settings are kept in the client's own cache (bounded, single-flight:
concurrent reads of one name make one call), never longer than the service's own entry
still had to live. Every secret value the client hands out is registered with
`mainmast.logging.register_secret`, so no log line of the application prints it (values
shorter than `MIN_SECRET_LENGTH` characters cannot be masked without masking ordinary
words, and are not).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, overload

import grpc
from google.protobuf import struct_pb2

from mainmast._grpc_client import GrpcClient, TokenProvider, check_client_config
from mainmast.auth import Page
from mainmast.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    MainmastError,
    RequestCancelledError,
    UnauthenticatedError,
    UnavailableError,
)
from mainmast.logging import MIN_SECRET_LENGTH, get_logger, register_secret

from ._client_cache import SingleFlightCache
from ._results import SecretChange, SecretMetadata, SecretValue
from .v1 import config_service_pb2, config_service_pb2_grpc, resources_pb2

MAX_BATCH_ITEMS: Final = 100
"""The most names one BatchGetSecrets or BatchGetSettings call takes; longer lists are split."""

CONFIG_CLIENT_DOMAIN: Final = "config.mainmast.dev"
"""The ErrorInfo domain of the errors this client raises itself (the service's domain)."""

JsonValue = Any
"""A parsed JSON document: dict, list, str, int, float, bool or None."""

_SETTING_TYPES: Final[Mapping[type, resources_pb2.SettingType.ValueType]] = {
    str: resources_pb2.SETTING_TYPE_STRING,
    int: resources_pb2.SETTING_TYPE_INT,
    bool: resources_pb2.SETTING_TYPE_BOOL,
    dict: resources_pb2.SETTING_TYPE_JSON,
    list: resources_pb2.SETTING_TYPE_JSON,
    object: resources_pb2.SETTING_TYPE_JSON,
}


@dataclass(frozen=True, slots=True)
class ConfigClientConfig:
    """How a ConfigClient reaches the config service and caches. Frozen: share one."""

    target: str = "127.0.0.1:50052"
    """The config service's gRPC address, HOST:PORT (any grpc target string)."""
    call_timeout_seconds: float = 5.0
    """Deadline of each unary call to the service."""
    cache_ttl_seconds: float = 60.0
    """How long a value is reused without a call (never longer than the service's own
    entry had left when it answered); 0 turns the client's cache off."""
    cache_max_entries: int = 1000
    """The most secrets (and, apart, settings) kept; the least recently used go first."""
    watch_retry_min_seconds: float = 0.5
    """The first wait before a broken watch stream is opened again; it doubles each time."""
    watch_retry_max_seconds: float = 30.0
    """The longest wait between two attempts to open a watch stream."""
    channel_credentials: grpc.ChannelCredentials | None = field(default=None, compare=False)
    """TLS credentials for the channel; None for a plaintext channel (loopback, mesh)."""
    channel_options: tuple[tuple[str, str | int], ...] = ()
    """Extra grpc channel options, e.g. `(("grpc.keepalive_time_ms", 30000),)`."""

    def __post_init__(self) -> None:
        check_client_config(self, "config", "call_timeout_seconds")
        if self.cache_ttl_seconds < 0 or self.cache_max_entries < 0:
            raise ValueError("cache_ttl_seconds and cache_max_entries are not negative")
        if not 0 < self.watch_retry_min_seconds <= self.watch_retry_max_seconds:
            raise ValueError("0 < watch_retry_min_seconds <= watch_retry_max_seconds")


# The async stub type exists only in the generated .pyi, hence the string.
class ConfigClient(
    GrpcClient[ConfigClientConfig, "config_service_pb2_grpc.ConfigServiceAsyncStub"]
):
    """Async client of the config service; see the module docstring.

    ::

        async with ConfigClient("config:50052", token=token_provider) as config:
            password = (await config.get_secret("database-password")).value
            limit = await config.get_setting("checkout.max-items", int)
            async for change in config.watch(["database-password"]):
                reconnect_database(change.secret)

    `token` is an access token, or an async callable returning one before each call;
    None sends no token (a service running with `auth_required=false`). `connect()` only
    opens the channel: it connects on the first call.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | TokenProvider | None = None,
        config: ConfigClientConfig | None = None,
    ) -> None:
        super().__init__(
            config or ConfigClientConfig(),
            target,
            new_stub=config_service_pb2_grpc.ConfigServiceStub,
            bearer_token=token,
        )
        config = self._config
        self._secrets: SingleFlightCache[tuple[str, str], SecretValue] = SingleFlightCache(
            ttl_seconds=config.cache_ttl_seconds, max_entries=config.cache_max_entries
        )
        self._settings: SingleFlightCache[tuple[str, int], Any] = SingleFlightCache(
            ttl_seconds=config.cache_ttl_seconds, max_entries=config.cache_max_entries
        )
        self._logger = get_logger("mainmast.config.client")

    async def close(self) -> None:
        """Close the channel and forget cached values; the client can connect again."""
        self._secrets.clear()
        self._settings.clear()
        await super().close()

    # -- secrets -----------------------------------------------------------------------

    async def get_secret(self, name: str, version: str | None = None) -> SecretValue:
        """The secret `name`, at its latest version or `version`, from the client's cache
        when it has it. NotFoundError SECRET_NOT_FOUND or SECRET_VERSION_NOT_FOUND,
        PermissionDeniedError SECRET_ACCESS_DENIED (also for names that do not exist)."""

        async def load() -> tuple[SecretValue, float | None]:
            request = config_service_pb2.GetSecretRequest(name=name, version=version or "")
            response = await self._call(self._connected_stub().GetSecret, request)
            return self._received(response.secret)

        return await self._secrets.get((name, version or ""), load)

    async def get_secrets(self, names: Iterable[str]) -> dict[str, SecretValue]:
        """The latest value of each of `names`, by name in the order given; the cached ones
        without a call, the others in batches of 100. Fails as a whole when one fails."""
        wanted = list(dict.fromkeys(names))
        found: dict[str, SecretValue] = {}
        missing: list[str] = []
        for name in wanted:
            cached = self._secrets.peek((name, ""))
            if cached is None:
                missing.append(name)
            else:
                found[name] = cached
        stub = self._connected_stub() if missing else None
        for start in range(0, len(missing), MAX_BATCH_ITEMS):
            assert stub is not None  # set whenever something is missing
            request = config_service_pb2.BatchGetSecretsRequest(
                names=missing[start : start + MAX_BATCH_ITEMS]
            )
            response = await self._call(stub.BatchGetSecrets, request)
            for message in response.secrets:
                secret, ttl = self._received(message)
                self._secrets.put((secret.name, ""), secret, ttl_seconds=ttl)
                found[secret.name] = secret
        return {name: found[name] for name in wanted}

    async def list_secrets(
        self, *, name_prefix: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[SecretMetadata]:
        """A page of the secrets the caller may read, ordered by name, without values."""
        request = config_service_pb2.ListSecretsRequest(
            name_prefix=name_prefix, page_size=page_size, page_token=page_token
        )
        response = await self._call(self._connected_stub().ListSecrets, request)
        return Page.of(response.secrets, SecretMetadata.from_proto, response.next_page_token)

    # -- settings ----------------------------------------------------------------------

    @overload
    async def get_setting(self, name: str) -> str: ...
    @overload
    async def get_setting(self, name: str, type: type[bool]) -> bool: ...
    @overload
    async def get_setting(self, name: str, type: type[int]) -> int: ...
    @overload
    async def get_setting(self, name: str, type: type[str]) -> str: ...
    @overload
    async def get_setting(self, name: str, type: type[dict[Any, Any]]) -> dict[str, JsonValue]: ...
    @overload
    async def get_setting(self, name: str, type: type[list[Any]]) -> list[JsonValue]: ...
    @overload
    async def get_setting(self, name: str, type: type[object]) -> JsonValue: ...

    async def get_setting(self, name: str, type: type[Any] = str) -> Any:
        """The setting `name` read as `type`: `str`, `int`, `bool`, or JSON as `dict`,
        `list` or `object` (any document). FailedPreconditionError SETTING_TYPE_MISMATCH
        when the stored text is not of that type; NotFoundError SETTING_NOT_FOUND."""
        setting_type = _SETTING_TYPES.get(type)
        if setting_type is None:
            raise TypeError(
                f"a setting is read as str, int, bool, dict, list or object, not {type!r}"
            )

        async def load() -> tuple[Any, float | None]:
            request = config_service_pb2.GetSettingRequest(name=name, type=setting_type)
            response = await self._call(self._connected_stub().GetSetting, request)
            return _setting_value(response.setting), None

        value = await self._settings.get((name, setting_type), load)
        if type in (dict, list) and not isinstance(value, type):
            shape = "object" if type is dict else "array"
            raise FailedPreconditionError(
                f"Setting {name!r} is JSON, but not a JSON {shape}.",
                reason="SETTING_TYPE_MISMATCH",
                domain=CONFIG_CLIENT_DOMAIN,
                metadata={"name": name, "type": "JSON"},
            )
        return value

    # -- watch -------------------------------------------------------------------------

    async def watch(
        self, names: Iterable[str], *, known_versions: Mapping[str, str] | None = None
    ) -> AsyncGenerator[SecretChange, None]:
        """Every change of `names`: first each one whose version differs from
        `known_versions` (all of them, when not given), then each change as it happens.

        A broken stream is opened again (with backoff) with the versions received so far,
        so nothing is missed and nothing repeated; it ends only when the caller stops
        iterating, or with the error of a call that cannot succeed again
        (PERMISSION_DENIED, INVALID_ARGUMENT, ...). Each change also refreshes the
        client's cache. `aclose()` the generator (or leave the `async for`) to stop watching.
        """
        watched = list(dict.fromkeys(names))
        held = {name: version for name, version in (known_versions or {}).items() if version}
        config = self._config
        delay = config.watch_retry_min_seconds
        while True:
            request = config_service_pb2.WatchSecretsRequest(names=watched, known_versions=held)
            opened = time.monotonic()
            try:
                # Inside: a token provider failing for a while (its auth service restarting)
                # is retried like a broken stream. A watch has no deadline.
                async with self._stream(
                    self._connected_stub().WatchSecrets, request, deadline_seconds=None
                ) as responses:
                    async for response in responses:
                        change = self._changed(SecretChange.from_proto(response))
                        if change.secret is None:
                            held.pop(change.name, None)
                        else:
                            held[change.name] = change.secret.version
                        yield change
                failure: MainmastError | None = None
            except MainmastError as exc:
                if not self._may_reconnect(exc):
                    raise
                failure = exc
            if time.monotonic() - opened >= config.watch_retry_max_seconds:
                delay = config.watch_retry_min_seconds  # it had been up a good while
            self._logger.warning(
                "config.watch_reconnecting",
                names=len(watched),
                reason="stream ended" if failure is None else failure.reason,
                retry_in_seconds=delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, config.watch_retry_max_seconds)

    # -- internals ---------------------------------------------------------------------

    def _received(self, message: resources_pb2.SecretValue) -> tuple[SecretValue, float]:
        """A secret from the service, its value registered for masking, and how long the
        client may keep it."""
        secret = SecretValue.from_proto(message)
        _register(secret.value)
        return secret, secret.ttl.total_seconds()

    def _changed(self, change: SecretChange) -> SecretChange:
        if change.secret is None:
            self._secrets.discard((change.name, ""))
        else:
            _register(change.secret.value)
            self._secrets.put(
                (change.name, ""), change.secret, ttl_seconds=change.secret.ttl.total_seconds()
            )
        return change

    def _may_reconnect(self, error: MainmastError) -> bool:
        if isinstance(
            error, UnavailableError | InternalError | DeadlineExceededError | RequestCancelledError
        ):
            return True
        # A fixed token that expired stays expired; a provider can give a fresh one.
        return isinstance(error, UnauthenticatedError) and callable(self._bearer_token)


def _register(value: str) -> None:
    # The registry refuses values it cannot mask without masking ordinary words.
    if len(value) >= MIN_SECRET_LENGTH and value.strip():
        register_secret(value)


def _setting_value(setting: resources_pb2.Setting) -> Any:
    kind = setting.WhichOneof("value")
    if kind == "string_value":
        return setting.string_value
    if kind == "int_value":
        return setting.int_value
    if kind == "bool_value":
        return setting.bool_value
    if kind == "json_value":
        return _json(setting.json_value)
    return None


def _json(value: struct_pb2.Value) -> JsonValue:
    """A google.protobuf.Value as Python; whole numbers as int, since a Value holds every
    number as a double while the setting's JSON text had `5`, not `5.0`."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {key: _json(item) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_json(item) for item in value.list_value.values]
    return None
