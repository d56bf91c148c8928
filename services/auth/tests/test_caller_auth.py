"""CallerAuthentication: a service's callers authenticated through a real auth service that
may start after it, and the dev mode that lets everyone through as a named principal."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from structlog.testing import capture_logs

from mainmast.auth import DEV_PRINCIPAL, CallerAuthentication, CallerAuthSettings
from mainmast.errors import PermissionDeniedError, UnavailableError
from mainmast.runtime import ServiceServer
from mainmast_auth.service import AuthService
from mainmast_auth.testing import seed_tenant

PASSWORD = "correct horse battery staple"
METHOD = "/mainmast.llm.v1.LlmService/Complete"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_calls_are_refused_until_the_auth_service_answers_then_authenticated(
    sqlite_url: str, auth_settings: Any
) -> None:
    port = _free_port()
    callers = CallerAuthentication(
        CallerAuthSettings(auth_target=f"127.0.0.1:{port}", auth_wait_seconds=0.05)
    )
    with capture_logs() as logs:
        await callers.start()
        authenticate = callers.authenticator()
        try:
            with pytest.raises(UnavailableError) as refused:
                await authenticate(METHOD, (("authorization", "Bearer x"),))

            service = AuthService(auth_settings(sqlite_url, listen=f"127.0.0.1:{port}"))
            async with ServiceServer(service):
                await seed_tenant(service.database, "tenants/acme", "alice", password=PASSWORD)
                # Seeded straight in the store: picked up now rather than at the next poll.
                await service.policy.refresh()
                # The background connect retries with backoff; wait for it, bounded.
                for _ in range(200):
                    if callers.client.keys is not None:
                        break
                    await asyncio.sleep(0.05)
                token = (await callers.client.login("tenants/acme", "alice", PASSWORD)).access_token
                principal = await authenticate(METHOD, (("authorization", f"Bearer {token}"),))
                await callers.require(principal, "invoices:read")
                with pytest.raises(PermissionDeniedError):
                    await callers.require(principal, "llm:complete")
        finally:
            await callers.close()

    assert refused.value.metadata == {"auth_target": f"127.0.0.1:{port}"}
    assert principal.subject == "tenants/acme/users/alice"
    assert "auth.keys_ready" in [entry["event"] for entry in logs]


async def test_with_auth_not_required_every_caller_is_the_dev_principal_allowed_all() -> None:
    callers = CallerAuthentication(CallerAuthSettings(auth_required=False))
    with capture_logs() as logs:
        await callers.start()
    try:
        principal = await callers.authenticator()(METHOD, ())
        await callers.require(principal, "llm:complete")
    finally:
        await callers.close()

    assert principal == DEV_PRINCIPAL
    assert not callers.required
    assert [entry["event"] for entry in logs] == ["auth.callers_unauthenticated"]
    assert logs[0]["log_level"] == "warning"


async def test_authenticating_before_start_is_a_programming_error() -> None:
    callers = CallerAuthentication(CallerAuthSettings())
    try:
        with pytest.raises(RuntimeError, match="start"):
            await callers.authenticator()(METHOD, (("authorization", "Bearer x"),))
    finally:
        await callers.close()
