"""`mainmast.config.v1.ConfigService`: the six methods over the cache, the chain and the watch.

Every method takes the caller from `current_principal()` (the runtime authenticated it),
checks the names' form, then asks the access policy, before any backend is asked: a caller
that may not read a name gets PERMISSION_DENIED whether the name exists or not. Every
access is audited (`AccessAuditor`): granted reads with the version, backend and cache
state that answered, failed ones with the error's reason, denials; never a value.

Secrets and settings are separate name spaces (see `_settings_values`): secret names under
`settings/` are refused as INVALID_NAME, and listings leave them out.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

import grpc.aio

from mainmast.config.v1 import config_service_pb2, config_service_pb2_grpc, resources_pb2
from mainmast.errors import MainmastError, NotFoundError, UnavailableError
from mainmast.runtime import Principal, current_principal

from ._audit import AccessAuditor, AccessKind
from ._backend import SecretRecord
from ._cache import CachedSecret, SecretCache
from ._chain import BackendChain
from ._errors import (
    invalid_argument,
    invalid_name,
    secret_access_denied,
    secret_not_found,
    setting_access_denied,
    too_many_names,
)
from ._messages import (
    cached_secret_message,
    change_message,
    secret_message,
    setting_message,
    setting_type_of,
)
from ._names import check_name, check_prefix
from ._page_tokens import page_start, page_token
from ._policy import AccessPolicy
from ._settings_values import (
    SettingType,
    TypedSetting,
    as_setting_error,
    is_setting_storage_name,
    setting_storage_name,
    typed_setting,
)
from ._watch import SecretWatcher

MAX_BATCH_ITEMS: Final = 100
"""The most names a batch or a watch takes."""
DEFAULT_PAGE_SIZE: Final = 50
"""The page size of a ListSecrets call that names none."""
MAX_PAGE_SIZE: Final = 1000
"""The largest page ListSecrets returns."""
LIST_METADATA_READS: Final = 8
"""How many secrets of a page ListSecrets reads at once for their metadata."""

_Context = grpc.aio.ServicerContext[Any, Any]
_T = TypeVar("_T")
_VERSION: Final = re.compile(r"[A-Za-z0-9_-]{0,128}")


class PolicySource(Protocol):
    """Where the servicer finds the access policy in force (a file that reloads, or fixed)."""

    @property
    def policy(self) -> AccessPolicy:
        """The policy in force now."""
        ...


class FixedPolicy:
    """A policy that never changes."""

    __slots__ = ("_policy",)

    def __init__(self, policy: AccessPolicy) -> None:
        self._policy = policy

    @property
    def policy(self) -> AccessPolicy:
        """The policy."""
        return self._policy


class ConfigServicer(config_service_pb2_grpc.ConfigServiceServicer):
    """The config service's methods; see the module docstring.

    `cache` reads through the chain (with the watch's read guard between them); `watcher`
    polls the chain for WatchSecrets and has been started.
    """

    def __init__(
        self,
        *,
        chain: BackendChain,
        cache: SecretCache,
        watcher: SecretWatcher,
        policy: PolicySource,
        auditor: AccessAuditor | None = None,
    ) -> None:
        self._chain = chain
        self._cache = cache
        self._watcher = watcher
        self._policy = policy
        self._auditor = auditor or AccessAuditor()

    async def GetSecret(  # noqa: N802 -- the contract's method name
        self, request: config_service_pb2.GetSecretRequest, context: _Context
    ) -> config_service_pb2.GetSecretResponse:
        """A secret's value at its latest version or the one asked for."""
        principal = current_principal()
        name = _secret_name(request.name, "name")
        version = _version(request.version)
        self._authorize(principal, AccessKind.SECRET, [name])
        answer = await self._read_secret(principal, name, version)
        return config_service_pb2.GetSecretResponse(secret=cached_secret_message(answer))

    async def ListSecrets(  # noqa: N802 -- the contract's method name
        self, request: config_service_pb2.ListSecretsRequest, context: _Context
    ) -> config_service_pb2.ListSecretsResponse:
        """A page of the secrets the caller may read, ordered by name, without values."""
        principal = current_principal()
        if request.page_size < 0:
            raise invalid_argument("page_size", "must be 0 or more")
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        prefix = check_prefix(request.name_prefix, field="name_prefix")
        after = page_start(request.page_token, prefix)
        policy = self._policy.policy
        try:
            listed = await self._chain.list_names()
        except MainmastError as exc:
            self._auditor.listed(
                caller=principal.subject, tenant=principal.tenant, name_prefix=prefix, error=exc
            )
            raise
        readable = (
            (name, backend)
            for name, backend in listed
            if name.startswith(prefix)
            and (after is None or name > after)
            and not is_setting_storage_name(name)
            and policy.allows(principal, AccessKind.SECRET, name)
        )
        # One name past the page says whether another follows: no decision is taken (nor
        # remembered by the policy) for names further on.
        window = list(itertools.islice(readable, page_size + 1))
        page, more = window[:page_size], len(window) > page_size
        records = await self._metadata([name for name, _ in page])
        secrets = [
            secret_message(name, backend, records[name])
            for name, backend in page
            if name in records
        ]
        self._auditor.listed(caller=principal.subject, tenant=principal.tenant, name_prefix=prefix)
        return config_service_pb2.ListSecretsResponse(
            secrets=secrets,
            next_page_token=page_token(page[-1][0], prefix) if more else "",
        )

    async def GetSetting(  # noqa: N802 -- the contract's method name
        self, request: config_service_pb2.GetSettingRequest, context: _Context
    ) -> config_service_pb2.GetSettingResponse:
        """A setting, read as the type asked for."""
        principal = current_principal()
        name, setting_type = _setting_request(request, "")
        self._authorize(principal, AccessKind.SETTING, [name])
        setting = await self._read_setting(principal, name, setting_type)
        return config_service_pb2.GetSettingResponse(setting=setting_message(setting))

    async def BatchGetSecrets(  # noqa: N802 -- the contract's method name
        self, request: config_service_pb2.BatchGetSecretsRequest, context: _Context
    ) -> config_service_pb2.BatchGetSecretsResponse:
        """Several secrets at their latest versions; fails as a whole when one fails."""
        principal = current_principal()
        _check_count("names", len(request.names))
        names = [_secret_name(name, f"names[{index}]") for index, name in enumerate(request.names)]
        self._authorize(principal, AccessKind.SECRET, names)
        answers = await _all_or_first_error(
            [self._read_secret(principal, name, None) for name in names]
        )
        return config_service_pb2.BatchGetSecretsResponse(
            secrets=[cached_secret_message(answer) for answer in answers]
        )

    async def BatchGetSettings(  # noqa: N802 -- the contract's method name
        self, request: config_service_pb2.BatchGetSettingsRequest, context: _Context
    ) -> config_service_pb2.BatchGetSettingsResponse:
        """Several settings; fails as a whole when one fails."""
        principal = current_principal()
        _check_count("requests", len(request.requests))
        wanted = [
            _setting_request(item, f"requests[{index}].")
            for index, item in enumerate(request.requests)
        ]
        self._authorize(principal, AccessKind.SETTING, [name for name, _ in wanted])
        settings = await _all_or_first_error(
            [self._read_setting(principal, name, setting_type) for name, setting_type in wanted]
        )
        return config_service_pb2.BatchGetSettingsResponse(
            settings=[setting_message(setting) for setting in settings]
        )

    async def WatchSecrets(  # noqa: N802 -- the contract's method name
        self, request: config_service_pb2.WatchSecretsRequest, context: _Context
    ) -> AsyncIterator[config_service_pb2.WatchSecretsResponse]:
        """What differs from the caller's known versions, then every change, until it leaves.

        A caller whose access is withdrawn by a new policy gets PERMISSION_DENIED at the
        next change of a name it may no longer read.
        """
        principal = current_principal()
        _check_count("names", len(request.names))
        if not request.names:
            raise invalid_argument("names", "name at least one secret to watch")
        names = [_secret_name(name, f"names[{index}]") for index, name in enumerate(request.names)]
        self._authorize(principal, AccessKind.SECRET, names)
        if self._watcher.closed:
            raise UnavailableError("The config service is shutting down; watch another replica.")
        async with self._watcher.subscribe(names, dict(request.known_versions)) as changes:
            async for change in changes:
                self._authorize(principal, AccessKind.SECRET, [change.name])
                self._audit_change(principal, change.name, change.record)
                yield change_message(
                    change,
                    ttl=self._cache.options.ttl_of(change.name),
                    fetch_time=datetime.now(UTC),
                )

    def _authorize(self, principal: Principal, kind: AccessKind, names: Sequence[str]) -> None:
        """PermissionDeniedError for the first of `names` the caller may not read; every
        denial is audited. Nothing has been read from a backend yet."""
        policy = self._policy.policy
        denied = [name for name in names if not policy.allows(principal, kind, name)]
        for name in denied:
            self._auditor.denied(
                caller=principal.subject, tenant=principal.tenant, name=name, kind=kind
            )
        if denied:
            if kind is AccessKind.SETTING:
                raise setting_access_denied(denied[0])
            raise secret_access_denied(denied[0])

    async def _read_secret(
        self, principal: Principal, name: str, version: str | None
    ) -> CachedSecret:
        try:
            answer = await self._cache.get(name, version)
        except MainmastError as exc:
            self._auditor.failed(
                caller=principal.subject, tenant=principal.tenant, name=name, error=exc
            )
            raise
        self._auditor.allowed(
            caller=principal.subject, tenant=principal.tenant, name=name, answer=answer
        )
        return answer

    async def _read_setting(
        self, principal: Principal, name: str, setting_type: SettingType
    ) -> TypedSetting:
        try:
            try:
                answer = await self._cache.get(setting_storage_name(name))
            except NotFoundError as exc:
                raise as_setting_error(exc, name) from None
            setting = typed_setting(name, answer.record, setting_type)
        except MainmastError as exc:
            self._auditor.failed(
                caller=principal.subject,
                tenant=principal.tenant,
                name=name,
                error=exc,
                kind=AccessKind.SETTING,
            )
            raise
        self._auditor.allowed(
            caller=principal.subject,
            tenant=principal.tenant,
            name=name,
            answer=answer,
            kind=AccessKind.SETTING,
        )
        return setting

    async def _metadata(self, names: list[str]) -> dict[str, SecretRecord | None]:
        """The record of each name (through the cache), None when its backend is in trouble;
        a name deleted since it was listed is left out."""
        slots = asyncio.Semaphore(LIST_METADATA_READS)

        async def read(name: str) -> SecretRecord | None:
            async with slots:
                return (await self._cache.get(name)).record

        results = await asyncio.gather(*(read(name) for name in names), return_exceptions=True)
        records: dict[str, SecretRecord | None] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, NotFoundError):
                continue
            if isinstance(result, MainmastError):
                records[name] = None  # listed with its name and backend, without metadata
                continue
            if isinstance(result, BaseException):
                raise result
            records[name] = result
        return records

    def _audit_change(self, principal: Principal, name: str, record: SecretRecord | None) -> None:
        if record is None:
            self._auditor.failed(
                caller=principal.subject,
                tenant=principal.tenant,
                name=name,
                error=secret_not_found(name),
            )
        else:
            self._auditor.allowed(
                caller=principal.subject, tenant=principal.tenant, name=name, answer=record
            )


def _secret_name(name: str, field: str) -> str:
    check_name(name, field=field)
    if is_setting_storage_name(name):
        raise invalid_name(
            name, "names under 'settings/' hold settings: read them with GetSetting", field=field
        )
    return name


def _version(version: str) -> str | None:
    if not _VERSION.fullmatch(version):
        raise invalid_argument("version", "a version has up to 128 letters, digits, '-' and '_'")
    return version or None


def _setting_request(
    request: config_service_pb2.GetSettingRequest, field_prefix: str
) -> tuple[str, SettingType]:
    name = check_name(request.name, field=f"{field_prefix}name")
    if request.type not in resources_pb2.SettingType.values():
        raise invalid_argument(f"{field_prefix}type", "not a SettingType of the contract")
    return name, setting_type_of(request.type)


def _check_count(field: str, count: int) -> None:
    if count > MAX_BATCH_ITEMS:
        raise too_many_names(field, count, MAX_BATCH_ITEMS)


async def _all_or_first_error(reads: Sequence[Awaitable[_T]]) -> list[_T]:
    """Run every read to its end (each audits itself), then raise the first error in request
    order, or return the results in order."""
    results = await asyncio.gather(*reads, return_exceptions=True)
    answers: list[_T] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        answers.append(result)
    return answers
