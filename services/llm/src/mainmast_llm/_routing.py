"""The routing file: model aliases, their ordered deployments, and the price table.

A YAML file (its path comes from the settings) maps each model alias a caller may ask for
to the deployments that can serve it, tried in order::

    models:
      gpt-4:
        deployments:
          - name: openai-eu
            provider: openai
            model: gpt-4o
            base_url: https://api.openai.com/v1
            key: {env: OPENAI_API_KEY}        # or {secret: openai-api-key}
            timeout_seconds: 30
            max_attempts: 2
            max_concurrent_requests: 64
          - name: azure-eu
            provider: azure_openai
            model: gpt-4o
            endpoint: https://example.openai.azure.com
            azure_deployment: chat-prod
            key: {secret: azure-openai-key}
    prices:
      gpt-4o: {prompt_per_1k: 0.0025, completion_per_1k: 0.01}

A key is always a reference (an environment variable or a config-service secret name),
never the key itself. Deployments of equal `priority` share traffic by `weight`; lower
priorities come first, and by default a deployment's priority is its position, so the
list order is the fallback order. A bad file raises ValidationError with one field
violation per mistake. With no file, `default_routing()` has the single alias `dev`,
served by the built-in dev provider; a file is taken as written, so the dev provider
serves only the aliases that name it.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Final

import pydantic
import yaml

from mainmast.errors import FieldViolation, ValidationError
from mainmast.llm import LLM_ERROR_DOMAIN

from ._completion import ProviderKind
from ._dev import DEV_MODEL
from ._usage import ModelPrice, PriceTable

DEV_ALIAS: Final = "dev"
"""The alias of the zero-config routing, served by the dev provider."""

DEV_DEPLOYMENT: Final = "dev"
"""The deployment name of the dev provider in the zero-config routing."""

_INVALID_ROUTING_REASON: Final = "INVALID_ROUTING_FILE"


class KeySource(enum.StrEnum):
    """Where a deployment's API key is looked up."""

    ENVIRONMENT = "env"
    CONFIG_SECRET = "secret"  # noqa: S105  # the word names a source, it is no password


@dataclass(frozen=True, slots=True)
class KeyReference:
    """Where to find a deployment's API key; never the key itself."""

    source: KeySource
    """An environment variable or a config-service secret."""
    name: str
    """The variable's or the secret's name."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """One provider endpoint and model that can serve an alias."""

    name: str
    """Unique in the file; attempts, breakers and the ledger name deployments by it."""
    provider: ProviderKind
    """The provider API it speaks."""
    model: str
    """The provider's model name."""
    base_url: str | None
    """The API base URL (OpenAI-compatible, Anthropic, Gemini, Ollama); None: the default."""
    endpoint: str | None
    """The Azure OpenAI resource endpoint (Azure only)."""
    azure_deployment: str | None
    """The Azure OpenAI deployment name (Azure only)."""
    api_version: str | None
    """The Azure OpenAI API version; None: the adapter's default."""
    key: KeyReference | None
    """Where its API key is; None for providers that need none (Ollama, dev)."""
    priority: int
    """Lower is tried first; equal priorities share traffic by weight."""
    weight: float
    """Its share of traffic among deployments of equal priority."""
    timeout_seconds: float
    """The most one attempt may take (the call's deadline may cut it shorter)."""
    max_attempts: int
    """Tries on this deployment per call, the first included, before falling back."""
    failure_threshold: int
    """Consecutive failures that open its circuit breaker."""
    cool_down_seconds: float
    """How long its breaker stays open before one probe is let through."""
    max_concurrent_requests: int | None
    """The most calls in flight at once on it; past that, calls go to the next deployment.
    None: no limit of ours."""


@dataclass(frozen=True, slots=True)
class ModelAlias:
    """A model name callers ask for, and the deployments that serve it."""

    name: str
    """The alias, e.g. `gpt-4`."""
    deployments: tuple[Deployment, ...]
    """Its deployments in file order; never empty."""


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """The parsed routing file."""

    aliases: Mapping[str, ModelAlias]
    """Every alias by name."""
    prices: PriceTable
    """Prices by deployment name or provider model name; the usage ledger charges by it."""

    def alias(self, name: str) -> ModelAlias | None:
        """The alias called `name`, or None."""
        return self.aliases.get(name)

    def price_of(self, deployment: Deployment) -> ModelPrice | None:
        """The price of a call on `deployment`, or None when the table has none."""
        return self.prices.price_of(deployment.name, deployment.model)

    def config_secret_names(self) -> list[str]:
        """The config-service secrets its deployments' keys name (`{secret: NAME}`), sorted."""
        return sorted(
            {
                deployment.key.name
                for alias in self.aliases.values()
                for deployment in alias.deployments
                if deployment.key is not None and deployment.key.source is KeySource.CONFIG_SECRET
            }
        )


def ordered_deployments(alias: ModelAlias, random: Callable[[], float]) -> list[Deployment]:
    """The deployments of `alias` in the order to try them for one call.

    Priorities ascend; within one priority the order is drawn by weight (`random` returns a
    float in [0, 1)), so the first pick of a group gets each deployment its share of calls.
    """
    ordered: list[Deployment] = []
    for priority in sorted({d.priority for d in alias.deployments}):
        group = [d for d in alias.deployments if d.priority == priority]
        while group:
            point = random() * sum(d.weight for d in group)
            chosen = group[-1]  # float rounding may leave `point` just past the last bound
            for candidate in group:
                point -= candidate.weight
                if point < 0:
                    chosen = candidate
                    break
            ordered.append(chosen)
            group.remove(chosen)
    return ordered


def default_routing() -> RoutingTable:
    """The zero-config routing: the alias `dev`, served by the built-in dev provider."""
    return parse_routing({"models": {DEV_ALIAS: {"deployments": [_DEV_DEPLOYMENT_ENTRY]}}})


_DEV_DEPLOYMENT_ENTRY: Final[Mapping[str, str]] = {
    "name": DEV_DEPLOYMENT,
    "provider": ProviderKind.DEV.value,
    "model": DEV_MODEL,
}


def load_routing(path: Path) -> RoutingTable:
    """The routing file at `path`, parsed; ValidationError for a file that cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _invalid(f"The routing file {path} cannot be read: {exc}.", []) from exc
    return parse_routing_text(text, source=str(path))


def parse_routing_text(text: str, *, source: str = "routing file") -> RoutingTable:
    """A routing file's YAML text, parsed; ValidationError for a bad one."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # The parser's message says where; the text itself may hold anything.
        raise _invalid(f"The {source} is not valid YAML: {exc}.", []) from exc
    return parse_routing(document, source=source)


def parse_routing(document: object, *, source: str = "routing file") -> RoutingTable:
    """A routing document (the YAML as Python values), parsed; ValidationError for a bad one."""
    try:
        parsed = _RoutingFile.model_validate(document)
    except pydantic.ValidationError as exc:
        violations = [
            FieldViolation(_field_path(error["loc"]), error["msg"].removeprefix("Value error, "))
            for error in exc.errors(include_url=False)
        ]
        raise _invalid(_summary(source, violations), violations) from None
    violations = list(_cross_violations(parsed))
    if violations:
        raise _invalid(_summary(source, violations), violations)
    return RoutingTable(
        aliases={
            name: ModelAlias(
                name=name,
                deployments=tuple(
                    _deployment(entry, index) for index, entry in enumerate(alias.deployments)
                ),
            )
            for name, alias in parsed.models.items()
        },
        prices=PriceTable(
            {
                model: ModelPrice(entry.prompt_per_1k, entry.completion_per_1k)
                for model, entry in parsed.prices.items()
            }
        ),
    )


def _invalid(message: str, violations: list[FieldViolation]) -> ValidationError:
    return ValidationError(
        message,
        field_violations=violations,
        reason=_INVALID_ROUTING_REASON,
        domain=LLM_ERROR_DOMAIN,
    )


def _summary(source: str, violations: list[FieldViolation]) -> str:
    return f"The {source} is invalid: " + "; ".join(
        f"{v.field}: {v.description}" for v in violations
    )


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


_Strict = pydantic.ConfigDict(extra="forbid", frozen=True, strict=True)
_Name = Annotated[
    str,
    pydantic.StringConstraints(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
    ),
]
_Text = Annotated[str, pydantic.StringConstraints(min_length=1)]
_Url = Annotated[str, pydantic.StringConstraints(pattern=r"^https?://")]
_EnvName = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _KeyEntry(pydantic.BaseModel):
    model_config = _Strict
    env: _EnvName | None = None
    secret: _Name | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> _KeyEntry:
        if (self.env is None) == (self.secret is None):
            raise ValueError("give exactly one of `env` (a variable name) or `secret` (a name)")
        return self


class _DeploymentEntry(pydantic.BaseModel):
    model_config = _Strict
    name: _Name
    provider: ProviderKind = pydantic.Field(strict=False)
    model: _Text | None = None
    base_url: _Url | None = None
    endpoint: _Url | None = None
    azure_deployment: _Text | None = None
    api_version: _Text | None = None
    # A string here would be the key itself, which the file must never hold.
    key: _KeyEntry | None = None
    priority: int | None = pydantic.Field(default=None, ge=0)
    weight: float = pydantic.Field(default=1.0, gt=0, allow_inf_nan=False, strict=False)
    timeout_seconds: float = pydantic.Field(default=60.0, gt=0, le=3600, strict=False)
    max_attempts: int = pydantic.Field(default=2, ge=1, le=10)
    failure_threshold: int = pydantic.Field(default=5, ge=1, le=1000)
    cool_down_seconds: float = pydantic.Field(default=30.0, gt=0, le=3600, strict=False)
    max_concurrent_requests: int | None = pydantic.Field(default=None, ge=1)

    @pydantic.field_validator("api_version", mode="before")
    @classmethod
    def _date_as_written(cls, value: object) -> object:
        # YAML reads an unquoted 2024-10-21 as a date; the version is that date as written.
        return value.isoformat() if isinstance(value, datetime.date) else value

    @pydantic.field_validator("key", mode="before")
    @classmethod
    def _a_reference(cls, value: object) -> object:
        if isinstance(value, str):
            # Said without echoing the value: it may be a real key pasted by mistake.
            # pydantic reports ValueError as a field violation (a TypeError would escape).
            raise ValueError(  # noqa: TRY004
                "must be {env: NAME} or {secret: NAME}, never the key itself"
            )
        return value

    @pydantic.model_validator(mode="after")
    def _fits_provider(self) -> _DeploymentEntry:
        problems = _provider_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _provider_problems(entry: _DeploymentEntry) -> list[str]:
    provider = entry.provider
    problems: list[str] = []
    # Azure's URL names the model (its deployment); the dev provider has just the one.
    if provider not in (ProviderKind.AZURE_OPENAI, ProviderKind.DEV) and entry.model is None:
        problems.append("`model` is required")
    if provider is ProviderKind.DEV and entry.model not in (None, DEV_MODEL):
        problems.append(f"the dev provider's only model is {DEV_MODEL!r}")
    azure_only = ("endpoint", "azure_deployment", "api_version")
    if provider is ProviderKind.AZURE_OPENAI:
        if entry.endpoint is None or entry.azure_deployment is None:
            problems.append("an azure_openai deployment needs `endpoint` and `azure_deployment`")
        if entry.base_url is not None:
            problems.append("an azure_openai deployment takes `endpoint`, not `base_url`")
    else:
        problems.extend(
            f"`{name}` is for azure_openai deployments only"
            for name in azure_only
            if getattr(entry, name) is not None
        )
    needs_key = provider in (
        ProviderKind.AZURE_OPENAI,
        ProviderKind.ANTHROPIC,
        ProviderKind.GEMINI,
    )
    if needs_key and entry.key is None:
        problems.append(f"a {provider.value} deployment needs `key`")
    if provider in (ProviderKind.OLLAMA, ProviderKind.DEV) and entry.key is not None:
        problems.append(f"a {provider.value} deployment takes no `key`")
    if provider is ProviderKind.DEV and entry.base_url is not None:
        problems.append("the dev provider takes no `base_url`")
    return problems


class _AliasEntry(pydantic.BaseModel):
    model_config = _Strict
    deployments: list[_DeploymentEntry] = pydantic.Field(min_length=1)


class _PriceEntry(pydantic.BaseModel):
    model_config = _Strict
    prompt_per_1k: Decimal = pydantic.Field(ge=0, allow_inf_nan=False, strict=False)
    completion_per_1k: Decimal = pydantic.Field(ge=0, allow_inf_nan=False, strict=False)


class _RoutingFile(pydantic.BaseModel):
    model_config = _Strict
    models: dict[_Name, _AliasEntry] = pydantic.Field(min_length=1)
    prices: dict[_Text, _PriceEntry] = pydantic.Field(default_factory=dict)


def _cross_violations(parsed: _RoutingFile) -> list[FieldViolation]:
    """What no single entry can see: deployment names must be unique in the file."""
    seen: dict[str, str] = {}
    violations: list[FieldViolation] = []
    for alias_name, alias in parsed.models.items():
        for index, entry in enumerate(alias.deployments):
            where = f"models.{alias_name}.deployments[{index}].name"
            if entry.name in seen:
                used_at = seen[entry.name]
                violations.append(FieldViolation(where, f"the name is already used at {used_at}"))
            else:
                seen[entry.name] = where
    return violations


def _deployment(entry: _DeploymentEntry, index: int) -> Deployment:
    key = None
    if entry.key is not None and entry.key.env is not None:
        key = KeyReference(KeySource.ENVIRONMENT, entry.key.env)
    elif entry.key is not None and entry.key.secret is not None:
        key = KeyReference(KeySource.CONFIG_SECRET, entry.key.secret)
    return Deployment(
        name=entry.name,
        provider=entry.provider,
        model=entry.model or entry.azure_deployment or DEV_MODEL,
        base_url=entry.base_url,
        endpoint=entry.endpoint,
        azure_deployment=entry.azure_deployment,
        api_version=entry.api_version,
        key=key,
        priority=index if entry.priority is None else entry.priority,
        weight=entry.weight,
        timeout_seconds=entry.timeout_seconds,
        max_attempts=entry.max_attempts,
        failure_threshold=entry.failure_threshold,
        cool_down_seconds=entry.cool_down_seconds,
        max_concurrent_requests=entry.max_concurrent_requests,
    )
