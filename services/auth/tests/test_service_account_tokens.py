"""ServiceAccountTokens against a real auth service on 127.0.0.1: a token reused until three
quarters of its life, then renewed; one grant for many callers; dropped on request; refused
credentials named in the error, never shown; the auth client connected on first use and left
open for its owner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from mainmast.auth import AuthClient, AuthClientConfig, ServiceAccountTokens
from mainmast.errors import DeadlineExceededError, UnauthenticatedError, UnavailableError

ACME = "tenants/acme"
PASSWORD = "correct horse battery staple"


class Clock:
    """Aware UTC datetimes that move only when told to."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Account:
    """A service account of acme on a running auth service, and a client of that service."""

    auth: AuthClient
    """A client of the auth service, not connected until a test connects it."""
    client_id: str
    """The account's client id."""
    client_secret: SecretStr
    """Its client secret."""

    def tokens(self, **options: Any) -> ServiceAccountTokens:
        """A token provider of the account."""
        return ServiceAccountTokens(
            self.auth,
            client_id=self.client_id,
            client_secret=self.client_secret,
            **options,
        )


@pytest.fixture
async def account(sqlite_url: str, serve_auth: Any) -> AsyncIterator[Account]:
    """The service account tenants/acme/serviceAccounts/orders-api; the auth service and the
    client are stopped and closed after the test."""
    async with serve_auth(sqlite_url) as served:
        await served.seed(ACME, "olga", role="admin")
        config = served.client_config()
        async with AuthClient(config=config) as admin:
            owner = (await admin.login(ACME, "olga", PASSWORD)).access_token
            created = await admin.create_service_account(ACME, "orders-api", bearer_token=owner)
        auth = AuthClient(config=config)
        try:
            yield Account(auth, created.service_account.client_id, SecretStr(created.client_secret))
        finally:
            await auth.close()


async def test_a_token_is_reused_until_three_quarters_of_its_life_then_renewed(
    account: Account,
) -> None:
    clock = Clock()
    tokens = account.tokens(clock=clock)

    first = await tokens()
    verified = await account.auth.verify(first)
    life = timedelta(seconds=verified.expires_at - clock.now.timestamp())
    clock.now += life * 0.7
    still = await tokens()
    clock.now += life * 0.1
    renewed = await tokens()

    assert verified.subject == f"{ACME}/serviceAccounts/orders-api"
    assert verified.client_id == account.client_id
    assert still == first
    assert renewed != first
    assert tokens.grants == 2


async def test_concurrent_callers_share_one_grant_and_forget_drops_the_token(
    account: Account,
) -> None:
    tokens = account.tokens()

    together = await asyncio.gather(*(tokens() for _ in range(20)))
    tokens.forget()
    after = await tokens()

    assert len(set(together)) == 1
    assert after != together[0]
    assert tokens.grants == 2


async def test_refused_credentials_name_the_account_without_the_secret(account: Account) -> None:
    wrong = "not-the-client-secret-8e2a41"
    tokens = ServiceAccountTokens(
        account.auth, client_id=account.client_id, client_secret=SecretStr(wrong)
    )

    with pytest.raises(UnauthenticatedError) as refused:
        await tokens()

    assert account.client_id in refused.value.message
    assert refused.value.metadata["client_id"] == account.client_id
    assert wrong not in str(refused.value)
    assert wrong not in repr(tokens)
    assert tokens.grants == 0


async def test_the_auth_client_is_connected_on_first_use_and_left_open_by_close(
    account: Account,
) -> None:
    tokens = account.tokens()

    token = await tokens()
    await tokens.close()

    # Still connected: verifying needs the keys fetched when it connected.
    assert (await account.auth.verify(token)).client_id == account.client_id
    assert await tokens() != token  # close dropped the token; a new one is granted


async def test_an_auth_service_that_is_down_fails_the_grant_and_the_next_one_tries_again() -> None:
    auth = AuthClient(config=AuthClientConfig(target="127.0.0.1:1", connect_timeout_seconds=0.2))
    tokens = ServiceAccountTokens(auth, client_id="orders", client_secret=SecretStr("secret-1234"))
    try:
        failures = []
        for _ in range(2):
            with pytest.raises((UnavailableError, DeadlineExceededError)) as failed:
                await tokens()
            failures.append(failed.value)
    finally:
        await tokens.close()
        await auth.close()

    assert failures[0] is not failures[1]  # the failure was not kept


def test_a_service_account_needs_both_credentials() -> None:
    auth = AuthClient()
    with pytest.raises(ValueError, match="client id and a client secret"):
        ServiceAccountTokens(auth, client_id="", client_secret=SecretStr("secret-1234"))
    with pytest.raises(ValueError, match="client id and a client secret"):
        ServiceAccountTokens(auth, client_id="orders", client_secret=SecretStr(""))
