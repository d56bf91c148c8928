"""Helpers for tests that run a real llm service in process, on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import SecretStr

from mainmast.runtime import ServiceServer

from ._provider_keys import SecretSource
from .service import LlmService
from .settings import LlmSettings


@contextlib.asynccontextmanager
async def running_llm_service(
    database_url: str,
    *,
    auth_target: str | None = None,
    environ: Mapping[str, str] | None = None,
    secrets: SecretSource | None = None,
    **settings: Any,
) -> AsyncIterator[ServiceServer]:
    """An LlmService on 127.0.0.1:0 with its ledger at `database_url`, stopped after.

    With `auth_target`, callers authenticate with tokens of that auth service; without,
    every caller is the dev principal (`auth_required=false`). Provider keys come from
    `environ` (empty when None, never the process environment) and `secrets`; `settings`
    are further LlmSettings fields (`routing_file`, `daily_tokens`, ...).
    """
    auth: dict[str, Any] = (
        {"auth_required": False} if auth_target is None else {"auth_target": auth_target}
    )
    service = LlmService(
        LlmSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            database_url=SecretStr(database_url),
            http_trust_env=False,
            **auth,
            **settings,
        ),
        environ=environ or {},
        secrets=secrets,
    )
    async with ServiceServer(service) as server:
        yield server
