"""mainmast.fastapi's fleet dependencies where no fleet service is needed: how they are
declared, what OpenAPI shows, and the mistakes an application can make with them (a route
used without the fleet's lifespan, a tenant parameter the path lacks, a fleet that cannot
start). Against real auth and config services: tests/test_fastapi_fleet.py."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace
from typing import Annotated, Any, cast

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr
from structlog.testing import capture_logs

from mainmast._http_secrets import read_secret
from mainmast.auth import AuthClientConfig, VerifiedToken
from mainmast.errors import (
    DeadlineExceededError,
    InternalError,
    UnauthenticatedError,
    UnavailableError,
)
from mainmast.fastapi import (
    CurrentUser,
    Fleet,
    FleetClients,
    Secret,
    current_user,
    install_error_handlers,
    require_permission,
)

MIA = VerifiedToken(
    subject="tenants/acme/users/mia",
    tenant="tenants/acme",
    token_id="token-1",
    issuer="mainmast-auth",
    audiences=("mainmast",),
    roles=("tenants/acme/roles/member",),
    scopes=(),
    issued_at=0.0,
    expires_at=0.0,
    not_before=None,
    client_id=None,
    key_id="key-1",
    algorithm="EdDSA",
    claims=MappingProxyType({}),
)


def _app() -> FastAPI:
    """An application whose routes use the dependencies, started without the fleet."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/me")
    async def me(user: CurrentUser) -> str:
        return user.subject

    # The path names its parameter `tenant`, not the `tenant_id` the permission reads.
    @app.get(
        "/tenants/{tenant}/users",
        dependencies=[require_permission("users:read", tenant_from="tenant_id")],
    )
    async def users(tenant: str) -> str:
        return tenant

    @app.get("/database")
    async def database(password: Annotated[str, Secret("database-password")]) -> str:
        return password

    return app


class RefusingConfig:
    """Stands in for a ConfigClient whose service refuses the first `refusals` reads."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.reads = 0

    async def get_secret(self, name: str, version: str | None = None) -> Any:
        self.reads += 1
        if self.reads <= self.refusals:
            raise UnauthenticatedError("The token has been revoked.", reason="TOKEN_REVOKED")
        return SimpleNamespace(name=name, value="orders-db-Pa55word")


class HeldTokens:
    """Stands in for ServiceAccountTokens, counting how often its token was dropped."""

    def __init__(self) -> None:
        self.forgotten = 0

    def forget(self) -> None:
        self.forgotten += 1


def _clients(config: RefusingConfig, tokens: HeldTokens | None) -> FleetClients:
    return FleetClients(
        auth=cast(Any, None), config=cast(Any, config), service_account=cast(Any, tokens)
    )


def _client(app: FastAPI) -> httpx.AsyncClient:
    # Starlette re-raises unhandled exceptions to the server after answering.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_openapi_shows_the_bearer_scheme_on_the_routes_that_need_a_caller() -> None:
    async with _client(_app()) as client:
        document = (await client.get("/openapi.json")).json()

    assert document["components"]["securitySchemes"]["mainmast"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A mainmast access token, issued by the auth service.",
    }
    assert document["paths"]["/me"]["get"]["security"] == [{"mainmast": []}]
    assert "security" not in document["paths"]["/database"]["get"]


async def test_a_request_without_a_token_is_refused_before_any_fleet_client_is_needed() -> None:
    async with _client(_app()) as client:
        response = await client.get("/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["reason"] == "CREDENTIALS_MISSING"


async def test_a_route_served_without_the_fleets_lifespan_is_a_logged_500() -> None:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with _client(_app()) as client:
            with_token = await client.get("/me", headers={"Authorization": "Bearer a.b.c"})
            secret = await client.get("/database")

    for response in (with_token, secret):
        assert response.status_code == 500
        assert response.json()["reason"] == "INTERNAL"
        assert "lifespan" not in response.text
    errors = [entry["exc_info"] for entry in logs if entry.get("exc_info")]
    assert len(errors) == 2
    assert all("FastAPI(lifespan=fleet.lifespan)" in str(error) for error in errors)


async def test_a_tenant_parameter_the_path_lacks_is_a_logged_500() -> None:
    app = _app()
    app.dependency_overrides[current_user] = lambda: MIA

    with capture_logs() as logs:
        async with _client(app) as client:
            response = await client.get(
                "/tenants/acme/users", headers={"Authorization": "Bearer a.b.c"}
            )

    assert response.status_code == 500
    (logged,) = [entry["exc_info"] for entry in logs if entry.get("exc_info")]
    assert "has no {tenant_id} parameter" in str(logged)


async def test_an_application_whose_auth_service_does_not_answer_does_not_start() -> None:
    fleet = Fleet(auth=AuthClientConfig(target="127.0.0.1:1", connect_timeout_seconds=0.2))
    app = FastAPI(lifespan=fleet.lifespan)

    with pytest.raises((UnavailableError, DeadlineExceededError)):
        async with app.router.lifespan_context(app):
            pass

    with pytest.raises(RuntimeError, match="no fleet clients"):
        FleetClients.of(app)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client_id": "orders-api"}, "both client_id and client_secret"),
        ({"client_secret": SecretStr("secret-1234")}, "both client_id and client_secret"),
        ({"client_id": "orders-api", "client_secret": SecretStr("")}, "both client_id"),
    ],
)
def test_a_fleet_takes_both_credentials_of_a_service_account_or_neither(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Fleet(**options)


@pytest.mark.parametrize("permission", ["users", "users:", ":read", "users:read:all", "a b:c", ""])
def test_a_permission_that_is_not_resource_action_is_refused_when_declared(
    permission: str,
) -> None:
    with pytest.raises(ValueError, match="resource:action"):
        require_permission(permission)


def test_a_tenant_is_named_one_way_only() -> None:
    with pytest.raises(ValueError, match="not both"):
        require_permission("users:read", tenant="tenants/acme", tenant_from="tenant_id")


def test_a_secret_has_a_name() -> None:
    with pytest.raises(ValueError, match="has a name"):
        Secret("")


async def test_a_service_account_token_the_config_service_refuses_is_renewed_once() -> None:
    config, tokens = RefusingConfig(refusals=1), HeldTokens()

    value = await read_secret(_clients(config, tokens), "orders/db-password")

    assert value == "orders-db-Pa55word"
    assert (config.reads, tokens.forgotten) == (2, 1)


async def test_a_refusal_that_a_new_token_does_not_cure_is_the_applications_500() -> None:
    config, tokens = RefusingConfig(refusals=2), HeldTokens()

    with capture_logs() as logs, pytest.raises(InternalError) as failed:
        await read_secret(_clients(config, tokens), "orders/db-password")

    assert failed.value.message == "Internal error."
    assert (config.reads, tokens.forgotten) == (2, 1)
    (logged,) = [entry for entry in logs if entry["event"] == "fleet.secret_unreadable"]
    assert (logged["secret_name"], logged["reason"]) == ("orders/db-password", "TOKEN_REVOKED")
    assert "refused the service account's token" in logged["hint"]


async def test_without_a_service_account_a_refusal_is_not_tried_again() -> None:
    config = RefusingConfig(refusals=1)

    with capture_logs() as logs, pytest.raises(InternalError):
        await read_secret(_clients(config, None), "orders/db-password")

    assert config.reads == 1
    (logged,) = [entry for entry in logs if entry["event"] == "fleet.secret_unreadable"]
    assert "give the Fleet a client_id and client_secret" in logged["hint"]
