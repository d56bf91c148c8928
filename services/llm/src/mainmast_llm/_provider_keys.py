"""Provider API keys, read where the routing file says and never logged.

A deployment's `key` names where its key is: `{env: NAME}` an environment variable,
`{secret: NAME}` a secret of the config service. Both are read through one protocol,
`SecretSource`: `EnvironmentSecrets` over a mapping (the process environment by
default) and, for secrets, whatever the service was given (`ConfigServiceSecrets`).

An environment variable is read once, since a process's environment does not change. A
secret is asked for at every call, so that a rotated key is used without a restart; the
source answers from its cache (see `_config_secrets`). While the config service cannot be
reached, the key read last is used again: an outage of the config service does not stop
calls that worked before it. A key never read fails its call with UnavailableError
PROVIDER_KEY_UNAVAILABLE instead, and the next call asks again.

Each key is registered with `mainmast.logging.register_secret` as soon as it is read, so
no log line can carry it, whoever logs it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Protocol

from mainmast.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    MainmastError,
    NotFoundError,
    UnavailableError,
)
from mainmast.llm import LLM_ERROR_DOMAIN
from mainmast.logging import MIN_SECRET_LENGTH, get_logger, register_secret

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
    `config` (None: no config service, so such keys are missing); see the module docstring."""

    def __init__(self, environment: SecretSource, config: SecretSource | None = None) -> None:
        self._sources: dict[KeySource, SecretSource | None] = {
            KeySource.ENVIRONMENT: environment,
            KeySource.CONFIG_SECRET: config,
        }
        self._read: dict[KeyReference, str] = {}
        self._stale: set[KeyReference] = set()
        self._logger = get_logger(__name__)

    def follows_rotation(self, reference: KeyReference) -> bool:
        """Whether the key is asked for at every call (a secret of a configured config
        service) rather than read once."""
        return (
            reference.source is KeySource.CONFIG_SECRET
            and self._sources[KeySource.CONFIG_SECRET] is not None
        )

    async def key_of(
        self, deployment: str, reference: KeyReference, *, deadline: float | None = None
    ) -> str:
        """The key `reference` names for `deployment`, registered as a secret to mask.

        FailedPreconditionError PROVIDER_KEY_MISSING when it is not there (or no config
        service is configured for a secret), PROVIDER_KEY_UNREADABLE when the source refused
        it; UnavailableError PROVIDER_KEY_UNAVAILABLE when the source cannot be reached (or
        did not answer by `deadline`, absolute on the event loop's clock) and no key was
        read before. Each names the deployment and where the key was looked for, never a value.
        """
        if not self.follows_rotation(reference):
            known = self._read.get(reference)
            if known is not None:
                return known
        source = self._sources[reference.source]
        if source is None:
            raise _missing(
                deployment,
                reference,
                " (no config service is configured: set MAINMAST_LLM_CONFIG_TARGET)",
            )
        try:
            async with asyncio.timeout_at(deadline):
                value = await source.get_secret(reference.name)
        except NotFoundError as exc:
            raise _missing(deployment, reference) from exc
        except (UnavailableError, DeadlineExceededError, TimeoutError) as exc:
            return self._read_before(deployment, reference, exc)
        except MainmastError as exc:
            raise FailedPreconditionError(
                f"The key of the deployment {deployment!r} could not be read from "
                f"{_where(reference)} ({exc.reason}): {exc.message}",
                reason="PROVIDER_KEY_UNREADABLE",
                domain=LLM_ERROR_DOMAIN,
                metadata={**_metadata(deployment, reference), "cause_reason": exc.reason},
            ) from exc
        if not value:
            raise _missing(deployment, reference)
        self._remember(reference, value)
        return value

    def _remember(self, reference: KeyReference, value: str) -> None:
        self._stale.discard(reference)
        if self._read.get(reference) == value:
            return
        # A value shorter than this (a placeholder such as "x" for a keyless
        # OpenAI-compatible server) would mask ordinary words in every line.
        if len(value.strip()) >= MIN_SECRET_LENGTH:
            register_secret(value)
        self._read[reference] = value

    def _read_before(self, deployment: str, reference: KeyReference, error: BaseException) -> str:
        """The key read last, while its source cannot be reached; UnavailableError if none."""
        known = self._read.get(reference)
        if known is not None and reference in self._stale:
            return known
        cause = error.reason if isinstance(error, MainmastError) else "DEADLINE_EXCEEDED"
        metadata = {**_metadata(deployment, reference), "cause_reason": cause}
        if known is None:
            raise UnavailableError(
                f"The key of the deployment {deployment!r} cannot be read from "
                f"{_where(reference)} right now ({cause}); the next call tries again.",
                reason="PROVIDER_KEY_UNAVAILABLE",
                domain=LLM_ERROR_DOMAIN,
                metadata=metadata,
            ) from error
        self._stale.add(reference)
        # Once per outage, not at every call it lasts.
        self._logger.warning(
            "llm.provider_key_from_earlier_read",
            detail=f"{_where(reference)} cannot be read right now; the key read last is used",
            **metadata,
        )
        return known


# Where a key was looked for, and the metadata of its errors: made only when a read fails,
# never on the path of a call whose key is at hand.
def _where(reference: KeyReference) -> str:
    if reference.source is KeySource.ENVIRONMENT:
        return f"the environment variable {reference.name}"
    return f"the config-service secret {reference.name}"


def _metadata(deployment: str, reference: KeyReference) -> dict[str, str]:
    return {
        "deployment": deployment,
        "key_source": reference.source.value,
        "key_name": reference.name,
    }


def _missing(deployment: str, reference: KeyReference, why: str = "") -> FailedPreconditionError:
    return FailedPreconditionError(
        f"The key of the deployment {deployment!r} is missing: {_where(reference)}{why} "
        "is not set.",
        reason="PROVIDER_KEY_MISSING",
        domain=LLM_ERROR_DOMAIN,
        metadata=_metadata(deployment, reference),
    )
