"""Provider API keys, read where the routing file says and never logged.

A deployment's `key` names where its key is: `{env: NAME}` an environment variable,
`{secret: NAME}` a secret of the config service. Both are read through one protocol,
`SecretSource`: `EnvironmentSecrets` over a mapping (the process environment by
default) and, for secrets, whatever the service was given (the config service's client).
Each key is registered with `mainmast.logging.register_secret` as soon as it is read, so
no log line can carry it, whoever logs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from mainmast.errors import FailedPreconditionError, MainmastError, NotFoundError
from mainmast.llm import LLM_ERROR_DOMAIN
from mainmast.logging import MIN_SECRET_LENGTH, register_secret

from ._routing import KeyReference, KeySource


class SecretSource(Protocol):
    """Reads a secret's value by name."""

    async def get_secret(self, name: str) -> str:
        """The value of the secret `name`; NotFoundError when there is none."""
        ...


class EnvironmentSecrets:
    """Environment variables as a SecretSource; an unset or empty variable is not found."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    async def get_secret(self, name: str) -> str:
        """The variable's value; NotFoundError when it is unset or empty."""
        value = self._environ.get(name)
        if not value:
            raise NotFoundError("Environment variable", name)
        return value


class ProviderKeys:
    """Looks up the keys of deployments: `{env: ...}` in `environment`, `{secret: ...}` in
    `config` (None: no config service, so such keys are missing). Each key is read once."""

    def __init__(self, environment: SecretSource, config: SecretSource | None = None) -> None:
        self._sources: dict[KeySource, SecretSource | None] = {
            KeySource.ENVIRONMENT: environment,
            KeySource.CONFIG_SECRET: config,
        }
        self._read: dict[KeyReference, str] = {}

    async def key_of(self, deployment: str, reference: KeyReference) -> str:
        """The key `reference` names for `deployment`, registered as a secret to mask.

        FailedPreconditionError PROVIDER_KEY_MISSING when it is not there (or no config
        service is configured for a secret), PROVIDER_KEY_UNREADABLE when the source
        failed; both name the deployment and where the key was looked for, never a value.
        """
        known = self._read.get(reference)
        if known is not None:
            return known
        where = (
            f"the environment variable {reference.name}"
            if reference.source is KeySource.ENVIRONMENT
            else f"the config-service secret {reference.name}"
        )
        metadata = {
            "deployment": deployment,
            "key_source": reference.source.value,
            "key_name": reference.name,
        }
        source = self._sources[reference.source]
        if source is None:
            raise _missing(deployment, f"{where} (no config service is configured)", metadata)
        try:
            value = await source.get_secret(reference.name)
        except NotFoundError as exc:
            raise _missing(deployment, where, metadata) from exc
        except MainmastError as exc:
            raise FailedPreconditionError(
                f"The key of the deployment {deployment!r} could not be read from {where}: "
                f"{exc.reason}.",
                reason="PROVIDER_KEY_UNREADABLE",
                domain=LLM_ERROR_DOMAIN,
                metadata={**metadata, "cause_reason": exc.reason},
            ) from exc
        if not value:
            raise _missing(deployment, where, metadata)
        # A value shorter than this (a placeholder such as "x" for a keyless
        # OpenAI-compatible server) would mask ordinary words in every line.
        if len(value.strip()) >= MIN_SECRET_LENGTH:
            register_secret(value)
        self._read[reference] = value
        return value


def _missing(deployment: str, where: str, metadata: dict[str, str]) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"The key of the deployment {deployment!r} is missing: {where} is not set.",
        reason="PROVIDER_KEY_MISSING",
        domain=LLM_ERROR_DOMAIN,
        metadata=metadata,
    )
