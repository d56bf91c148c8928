"""mainmast.fastapi's fleet dependencies in a real FastAPI application, served through httpx's
ASGI transport with its lifespan run, against a real auth service and a real config service
on 127.0.0.1: callers authenticated by their tokens (401 with a bearer challenge otherwise),
permissions decided by the auth service in the caller's tenant or a named one (403
otherwise), secrets read as the application's own service account, and what a caller sees
when either service stops answering."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr
from structlog.testing import capture_logs

from mainmast.auth import AuthClient, AuthClientConfig, VerifiedToken
from mainmast.config import ConfigClientConfig
from mainmast.fastapi import (
    CurrentUser,
    Fleet,
    FleetClients,
    Secret,
    install_error_handlers,
    require_permission,
)
from mainmast.runtime import ServiceServer
from mainmast_auth._tokens import AccessTokenIssuer
from mainmast_auth.service import AuthService
from mainmast_auth.settings import AuthSettings
from mainmast_auth.testing import grant_platform_admin, seed_tenant
from mainmast_config._backend import BackendKind
from mainmast_config._testing import RunningConfig, ScriptedBackend, serve_config_service
from mainmast_config.settings import ConfigSettings

PASSWORD = "correct horse battery staple"
ACME = "tenants/acme"
GLOBEX = "tenants/globex"
DATABASE_PASSWORD = "orders-db-Pa55word-7c1e"
API_KEY = "orders-api-key-9f3b2a"
STRIPE_KEY = "sk_live_fleet_4d5e6f7a"
POLICY = """\
rules:
  - subjects: [tenants/acme/serviceAccounts/orders-api]
    secrets: ["orders/*"]
"""


@dataclass
class Services:
    """A running auth service and config service, and tokens of their callers."""

    auth: ServiceServer
    """The auth service's server."""
    config: RunningConfig
    """The config service, whose access policy grants `orders/*` to the application."""
    tokens: dict[str, str] = field(repr=False)
    """Access tokens by user: olga (admin of acme), mia (member of acme), gus (member of
    globex), root (of acme, platform admin)."""
    client_id: str
    """The client id of the application's service account (acme/serviceAccounts/orders-api)."""
    client_secret: SecretStr
    """Its client secret."""

    def fleet(self, *, service_account: bool = True, **auth_options: Any) -> Fleet:
        """The Fleet of an application using these services (as its service account, or
        with no credentials at all)."""
        return Fleet(
            auth=AuthClientConfig(target=f"127.0.0.1:{self.auth.port}", **auth_options),
            config=ConfigClientConfig(target=self.config.target),
            client_id=self.client_id if service_account else None,
            client_secret=self.client_secret if service_account else None,
        )

    async def expired_token(self, user: str) -> str:
        """A token of `user` of acme, signed with the auth service's active key, that
        expired an hour ago."""
        service = self.auth.service
        assert isinstance(service, AuthService)
        ring = await service.tokens.key_ring()
        issuer = AccessTokenIssuer(
            issuer=service.settings.issuer,
            audience=service.settings.audience,
            clock=lambda: time.time() - 7200,
        )
        return issuer.issue(ring.active, subject=f"{ACME}/users/{user}", tenant=ACME).token


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """An auth service and a config service on 127.0.0.1, both stopped after the test."""
    auth_service = AuthService(
        AuthSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            database_url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"),
            signing_key_encryption_key_file=tmp_path / "sealing.key",
        )
    )
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    secrets = ScriptedBackend(
        BackendKind.ENVIRONMENT,
        {
            "orders/db-password": DATABASE_PASSWORD,
            "orders/api-key": API_KEY,
            "payments/stripe-key": STRIPE_KEY,
        },
    )
    async with ServiceServer(auth_service) as auth_server:
        database = auth_service.database
        await seed_tenant(database, ACME, "olga", password=PASSWORD, role="admin")
        await seed_tenant(database, ACME, "mia", "root", password=PASSWORD)
        await seed_tenant(database, GLOBEX, "gus", password=PASSWORD)
        await grant_platform_admin(database, f"{ACME}/users/root")
        await auth_service.policy.refresh()  # now, not at the next poll
        auth_target = f"127.0.0.1:{auth_server.port}"
        async with AuthClient(config=AuthClientConfig(target=auth_target)) as auth:
            tokens = {
                user: (await auth.login(tenant, user, PASSWORD)).access_token
                for tenant, user in ((ACME, "olga"), (ACME, "mia"), (GLOBEX, "gus"), (ACME, "root"))
            }
            account = await auth.create_service_account(
                ACME, "orders-api", bearer_token=tokens["olga"]
            )
        config_settings = ConfigSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            auth_target=auth_target,
            access_policy_file=policy_file,
            dotenv_path=tmp_path / "no.env",
        )
        async with serve_config_service(config_settings, backends=[secrets]) as config:
            yield Services(
                auth=auth_server,
                config=config,
                tokens=tokens,
                client_id=account.service_account.client_id,
                client_secret=SecretStr(account.client_secret),
            )


def _app(fleet: Fleet) -> FastAPI:
    """An application with a route for each way of using the dependencies."""
    app = FastAPI(lifespan=fleet.lifespan)
    install_error_handlers(app)

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {
            "subject": user.subject,
            "tenant": user.tenant,
            "roles": list(user.roles),
            "logged_with": structlog.contextvars.get_contextvars(),
        }

    @app.get("/users", dependencies=[require_permission("users:read")])
    async def list_users() -> list[str]:
        return ["mia", "olga"]

    @app.delete("/users/{user_id}")
    async def delete_user(
        user_id: str, admin: Annotated[VerifiedToken, require_permission("users:delete")]
    ) -> dict[str, str]:
        return {"deleted": user_id, "by": admin.subject}

    @app.get(
        "/tenants/{tenant_id}/users",
        dependencies=[require_permission("users:read", tenant_from="tenant_id")],
    )
    async def list_tenant_users(tenant_id: str) -> str:
        return tenant_id

    @app.get("/globex/reports", dependencies=[require_permission("reports:read", tenant=GLOBEX)])
    async def globex_reports() -> str:
        return "reports"

    @app.get("/database")
    async def database(password: Annotated[str, Secret("orders/db-password")]) -> str:
        return password

    @app.get("/api-key")
    async def api_key(key: Annotated[str, Secret("orders/api-key")]) -> str:
        return key

    @app.get("/payments")
    async def payments(key: Annotated[str, Secret("payments/stripe-key")]) -> str:
        return key

    return app


@asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `app`, inside the application's lifespan."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tampered(token: str) -> str:
    """`token` with one character of its signature changed."""
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    changed = "A" if signature[middle] != "A" else "B"
    return ".".join((header, payload, signature[:middle] + changed + signature[middle + 1 :]))


async def test_a_request_without_a_token_is_401_with_a_bearer_challenge(
    services: Services,
) -> None:
    async with _served(_app(services.fleet())) as client:
        missing = await client.get("/me")
        other_scheme = await client.get("/me", headers={"Authorization": "Basic bWlhOnB3"})

    for response in (missing, other_scheme):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["reason"] == "CREDENTIALS_MISSING"


async def test_a_token_that_does_not_verify_is_401_with_its_reason(services: Services) -> None:
    expired = await services.expired_token("mia")

    async with _served(_app(services.fleet())) as client:
        answers = {
            "TOKEN_EXPIRED": await client.get("/me", headers=_bearer(expired)),
            "TOKEN_SIGNATURE_INVALID": await client.get(
                "/me", headers=_bearer(_tampered(services.tokens["mia"]))
            ),
            "TOKEN_MALFORMED": await client.get("/me", headers=_bearer("not-a-jwt")),
        }

    for reason, response in answers.items():
        assert response.status_code == 401, reason
        assert response.json()["reason"] == reason
        assert response.json()["domain"] == "auth.mainmast.dev"
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_valid_token_gives_the_caller_who_is_on_every_log_line_of_the_request(
    services: Services,
) -> None:
    async with _served(_app(services.fleet())) as client:
        response = await client.get("/me", headers=_bearer(services.tokens["mia"]))

    assert response.status_code == 200
    caller = response.json()
    assert (caller["subject"], caller["tenant"]) == (f"{ACME}/users/mia", ACME)
    assert caller["roles"] == [f"{ACME}/roles/member"]
    assert (
        caller["logged_with"] | {"tenant": ACME, "subject": f"{ACME}/users/mia"}
        == (caller["logged_with"])
    )
    assert "subject" not in structlog.contextvars.get_contextvars()


async def test_a_permission_is_checked_in_the_callers_tenant(services: Services) -> None:
    async with _served(_app(services.fleet())) as client:
        member_reads = await client.get("/users", headers=_bearer(services.tokens["mia"]))
        member_deletes = await client.delete("/users/gus", headers=_bearer(services.tokens["mia"]))
        admin_deletes = await client.delete("/users/mia", headers=_bearer(services.tokens["olga"]))
        nobody_reads = await client.get("/users")

    assert member_reads.status_code == 200
    assert member_deletes.status_code == 403
    assert member_deletes.headers["content-type"] == "application/problem+json"
    assert member_deletes.json()["reason"] == "PERMISSION_MISSING"
    assert member_deletes.json()["metadata"] == {"permission": "users:delete"}
    assert admin_deletes.status_code == 200
    assert admin_deletes.json() == {"deleted": "mia", "by": f"{ACME}/users/olga"}
    assert nobody_reads.status_code == 401


async def test_another_tenant_is_refused_unless_the_caller_is_a_platform_admin(
    services: Services,
) -> None:
    tokens = services.tokens
    async with _served(_app(services.fleet())) as client:
        own_tenant = await client.get("/tenants/acme/users", headers=_bearer(tokens["mia"]))
        other_tenant = await client.get("/tenants/globex/users", headers=_bearer(tokens["mia"]))
        platform_admin = await client.get("/tenants/globex/users", headers=_bearer(tokens["root"]))
        named_tenant_outsider = await client.get("/globex/reports", headers=_bearer(tokens["mia"]))
        named_tenant_member = await client.get("/globex/reports", headers=_bearer(tokens["gus"]))

    assert (own_tenant.status_code, own_tenant.json()) == (200, "acme")
    assert other_tenant.status_code == 403
    assert other_tenant.json()["reason"] == "PERMISSION_MISSING"
    assert platform_admin.status_code == 200
    assert named_tenant_outsider.status_code == 403
    assert named_tenant_member.status_code == 200


async def test_a_secret_is_read_as_the_applications_service_account(services: Services) -> None:
    fleet = services.fleet()

    async with _served(_app(fleet)) as client:
        # No caller token: the application reads its secrets as itself.
        first = await client.get("/database")
        again = await client.get("/database")

    assert (first.status_code, first.json()) == (200, DATABASE_PASSWORD)
    assert again.json() == DATABASE_PASSWORD


async def test_the_fleet_composes_with_the_applications_own_lifespan(services: Services) -> None:
    fleet = services.fleet()
    seen: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with fleet.connect(app) as clients:
            seen["password"] = (await clients.config.get_secret("orders/db-password")).value
            seen["grants"] = clients.service_account.grants if clients.service_account else 0
            yield

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/same")
    async def same(password: Annotated[str, Secret("orders/db-password")]) -> bool:
        return password == seen["password"]

    async with _served(app) as client:
        response = await client.get("/same")

    assert seen["password"] == DATABASE_PASSWORD
    assert seen["grants"] == 1
    assert response.json() is True
    with pytest.raises(RuntimeError, match="no fleet clients"):
        FleetClients.of(app)


async def test_a_secret_the_application_may_not_read_is_its_own_fault_not_the_callers(
    services: Services,
) -> None:
    async with _served(_app(services.fleet())) as not_granted:
        with capture_logs() as logs:
            refused = await not_granted.get("/payments", headers=_bearer(services.tokens["mia"]))
    async with _served(_app(services.fleet(service_account=False))) as no_credentials:
        anonymous = await no_credentials.get("/database")

    for response in (refused, anonymous):
        assert response.status_code == 500
        assert response.json()["reason"] == "INTERNAL"
        assert "www-authenticate" not in response.headers
    assert STRIPE_KEY not in refused.text
    (logged,) = [entry for entry in logs if entry["event"] == "fleet.secret_unreadable"]
    assert (logged["secret_name"], logged["reason"]) == (
        "payments/stripe-key",
        "SECRET_ACCESS_DENIED",
    )
    assert "access policy" in logged["hint"]


async def test_callers_keep_being_verified_while_the_auth_service_is_down(
    services: Services,
) -> None:
    mia = _bearer(services.tokens["mia"])
    # Decisions kept longer than the test may take, so the one asked before is still known.
    fleet = services.fleet(decision_cache_ttl_seconds=300)

    async with _served(_app(fleet)) as client:
        allowed_before = await client.get("/users", headers=mia)
        await services.auth.stop(0)
        me = await client.get("/me", headers=mia)
        first_seen_after = await client.get("/me", headers=_bearer(services.tokens["gus"]))
        allowed_after = await client.get("/users", headers=mia)
        undecided = await client.delete("/users/gus", headers=mia)

    assert allowed_before.status_code == 200
    assert me.json()["subject"] == f"{ACME}/users/mia"
    assert first_seen_after.json()["subject"] == f"{GLOBEX}/users/gus"
    assert allowed_after.status_code == 200
    assert undecided.status_code == 503
    assert undecided.headers["content-type"] == "application/problem+json"
    assert undecided.json()["reason"] == "UNAVAILABLE"
    assert "127.0.0.1" not in undecided.text


async def test_a_config_service_that_is_down_is_503_and_cached_secrets_still_answer(
    services: Services,
) -> None:
    async with _served(_app(services.fleet())) as client:
        read_before = await client.get("/database")
        await services.config.server.stop(0)
        cached = await client.get("/database")
        never_read = await client.get("/api-key")

    assert read_before.json() == DATABASE_PASSWORD
    assert cached.json() == DATABASE_PASSWORD
    assert never_read.status_code == 503
    assert never_read.headers["content-type"] == "application/problem+json"
    assert never_read.json()["reason"] == "UNAVAILABLE"
    assert "127.0.0.1" not in never_read.text
