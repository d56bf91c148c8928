"""Failed-login throttling over a real AuthService on 127.0.0.1 with SQLite.

The limits come from the service's settings (`login_*`, `trusted_proxy_hops`), as in
production; only the clock is the test's, moved by hand, so a lockout's length is read
from the answer rather than waited for.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
import pytest

from mainmast.auth.v1 import auth_service_pb2, auth_service_pb2_grpc, error_reason_pb2
from mainmast.errors import (
    MainmastError,
    RateLimitedError,
    UnauthenticatedError,
    translate_rpc_errors,
)
from mainmast.runtime import ServiceServer
from mainmast_auth import service as service_module
from mainmast_auth._login_throttle import LOGIN_THROTTLED
from mainmast_auth._passwords import PasswordHasher
from mainmast_auth._store_directory import create_service_account
from mainmast_auth._token_service import TokenService
from mainmast_auth.service import AuthService
from mainmast_auth.settings import AuthSettings
from mainmast_auth.testing import seed_tenant

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"
CLIENT_SECRET = "s3cr3t-client-value-for-tests-only"
TENANT = "tenants/acme"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS: dict[str, Any] = {
    "login_max_failures": 3,
    "login_address_max_failures": 100,
    "login_window_seconds": 15 * 60,
    "login_base_lockout_seconds": 60,
    "login_max_lockout_seconds": 3 * 60,
}


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@dataclass
class Server:
    """A running auth service, a stub on it, and the clock its throttle reads."""

    service: AuthService
    stub: auth_service_pb2_grpc.AuthServiceAsyncStub
    clock: FakeClock

    async def login(
        self,
        username: str,
        password: str = PASSWORD,
        *,
        forwarded_for: str | None = None,
    ) -> auth_service_pb2.IssueTokenResponse:
        """A password grant in TENANT."""
        request = auth_service_pb2.IssueTokenRequest(
            password=auth_service_pb2.IssueTokenRequest.PasswordGrant(
                tenant=TENANT, username=username, password=password
            )
        )
        metadata = None if forwarded_for is None else (("x-forwarded-for", forwarded_for),)
        with translate_rpc_errors():
            return await self.stub.IssueToken(request, metadata=metadata)

    async def failed_login(self, username: str, **options: Any) -> MainmastError:
        """The error of a login that must fail."""
        with pytest.raises(MainmastError) as caught:
            await self.login(username, WRONG, **options)
        return caught.value

    async def client_credentials(self, client_id: str, secret: str) -> None:
        """A client-credentials grant."""
        request = auth_service_pb2.IssueTokenRequest(
            client_credentials=auth_service_pb2.IssueTokenRequest.ClientCredentialsGrant(
                client_id=client_id, client_secret=secret
            )
        )
        with translate_rpc_errors():
            await self.stub.IssueToken(request)


@asynccontextmanager
async def _serve(
    sqlite_url: str,
    auth_settings: Callable[..., AuthSettings],
    monkeypatch: pytest.MonkeyPatch,
    limits: dict[str, Any] = LIMITS,
    users: Sequence[str] = ("alice",),
) -> AsyncIterator[Server]:
    clock = FakeClock()
    # The service builds its TokenService itself; these tests give it their clock.
    monkeypatch.setattr(
        service_module, "TokenService", functools.partial(TokenService, login_clock=clock)
    )
    settings = auth_settings(
        sqlite_url, issuer="https://auth.test", audience="mainmast-test", **limits
    )
    service = AuthService(settings)
    async with ServiceServer(service) as server:
        await seed_tenant(service.database, TENANT, *users, password=PASSWORD, now=NOW)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            yield Server(service, auth_service_pb2_grpc.AuthServiceStub(channel), clock)
        finally:
            await channel.close(None)


def _answer(error: MainmastError) -> tuple[object, ...]:
    """Everything a caller can read from an error."""
    retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
    return (type(error), error.message, error.reason, error.domain, error.metadata, retry_after)


def test_the_reason_is_a_value_of_the_contract() -> None:
    assert error_reason_pb2.ErrorReason.Name(error_reason_pb2.LOGIN_THROTTLED) == LOGIN_THROTTLED


async def test_a_user_is_locked_out_after_n_failures_and_the_lockout_doubles_to_its_cap(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _serve(sqlite_url, auth_settings, monkeypatch) as server:
        failures = [await server.failed_login("alice") for _ in range(3)]
        with pytest.raises(RateLimitedError) as first:
            await server.login("alice")  # even the right password is refused while locked
        server.clock.advance(61)
        after_lockout = await server.failed_login("alice")
        with pytest.raises(RateLimitedError) as second:
            await server.login("alice")
        server.clock.advance(121)
        await server.failed_login("alice")
        with pytest.raises(RateLimitedError) as third:
            await server.login("alice")
        server.clock.advance(181)
        await server.failed_login("alice")
        with pytest.raises(RateLimitedError) as capped:
            await server.login("alice")

    assert [failure.reason for failure in failures] == ["INVALID_CREDENTIALS"] * 3
    assert first.value.grpc_code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert first.value.reason == "LOGIN_THROTTLED"
    assert first.value.domain == "auth.mainmast.dev"
    # One failure after a lockout is enough to lock again, for twice as long.
    assert after_lockout.reason == "INVALID_CREDENTIALS"
    assert first.value.retry_after == timedelta(minutes=1)
    assert second.value.retry_after == timedelta(minutes=2)
    assert third.value.retry_after == timedelta(minutes=3)
    assert capped.value.retry_after == timedelta(minutes=3)


async def test_the_login_settings_decide_when_and_how_long_a_name_is_locked_out(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _serve(sqlite_url, auth_settings, monkeypatch, limits={}) as defaults:
        by_default = [await defaults.failed_login("alice") for _ in range(4)]
        still_open = await defaults.login("alice")
    strict = {"login_max_failures": 1, "login_base_lockout_seconds": 7}
    other_database = sqlite_url.replace("test.db", "strict.db")
    async with _serve(other_database, auth_settings, monkeypatch, limits=strict) as server:
        await server.failed_login("alice")
        with pytest.raises(RateLimitedError) as locked:
            await server.login("alice")

    # Four failures are below the default of five; one is enough when the setting says so,
    # and the lockout lasts what its setting says.
    assert [error.reason for error in by_default] == ["INVALID_CREDENTIALS"] * 4
    assert still_open.access_token
    assert locked.value.retry_after == timedelta(seconds=7)


async def test_a_lockout_counts_down_and_lifts(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _serve(sqlite_url, auth_settings, monkeypatch) as server:
        for _ in range(3):
            await server.failed_login("alice")
        server.clock.advance(20.5)
        with pytest.raises(RateLimitedError) as locked:
            await server.login("alice")
        server.clock.advance(40)
        issued = await server.login("alice")

    assert locked.value.retry_after == timedelta(seconds=40)  # 39.5 s, in whole seconds
    assert issued.access_token


async def test_a_success_resets_the_user_and_old_failures_age_out(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _serve(sqlite_url, auth_settings, monkeypatch) as server:
        for _ in range(2):
            await server.failed_login("alice")
        await server.login("alice")
        # Two more failures would have been the fourth and fifth: not locked after a success.
        reset = [await server.failed_login("alice") for _ in range(2)]
        server.clock.advance(15 * 60)
        # The two above are out of the window now; two more still do not lock.
        aged = [await server.failed_login("alice") for _ in range(2)]
        issued = await server.login("alice")

    assert [error.reason for error in reset + aged] == ["INVALID_CREDENTIALS"] * 4
    assert issued.access_token


async def test_an_unknown_user_is_locked_out_alike_and_the_answers_match(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifications: list[str | None] = []
    real_verify = PasswordHasher.verify_async

    async def counting_verify(self: PasswordHasher, password_hash: str | None, pw: str) -> bool:
        verifications.append(password_hash)
        return await real_verify(self, password_hash, pw)

    monkeypatch.setattr(PasswordHasher, "verify_async", counting_verify)
    async with _serve(sqlite_url, auth_settings, monkeypatch) as server:
        known = [await server.failed_login("alice") for _ in range(3)]
        unknown = [await server.failed_login("mallory") for _ in range(3)]
        before_locked = len(verifications)
        locked_known = await server.failed_login("alice")
        locked_unknown = await server.failed_login("mallory")
        with pytest.raises(RateLimitedError) as right_password:
            await server.login("alice")
        after_locked = len(verifications)

    assert [_answer(error) for error in known] == [_answer(error) for error in unknown]
    assert isinstance(locked_known, RateLimitedError)
    assert _answer(locked_known) == _answer(locked_unknown) == _answer(right_password.value)
    # A refused login does no argon2id work.
    assert before_locked == 6
    assert after_locked == before_locked


async def test_one_address_is_limited_across_usernames(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = {"login_max_failures": 10, "login_address_max_failures": 3}
    async with _serve(sqlite_url, auth_settings, monkeypatch, limits=limits) as server:
        spread = [await server.failed_login(name) for name in ("bob", "carol", "dave")]
        with pytest.raises(RateLimitedError) as locked:
            await server.login("alice")
        # The header is not trusted by default: it does not move a caller to a new address.
        with pytest.raises(RateLimitedError):
            await server.login("alice", forwarded_for="203.0.113.9")

    assert [error.reason for error in spread] == ["INVALID_CREDENTIALS"] * 3
    assert locked.value.retry_after == timedelta(minutes=1)


async def test_behind_a_trusted_proxy_the_forwarded_address_is_throttled(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = {"login_max_failures": 10, "login_address_max_failures": 2, "trusted_proxy_hops": 1}
    async with _serve(sqlite_url, auth_settings, monkeypatch, limits=limits) as server:
        # The client claims 198.51.100.1; the proxy appends what it saw, 203.0.113.9.
        for name in ("bob", "carol"):
            await server.failed_login(name, forwarded_for="198.51.100.1, 203.0.113.9")
        with pytest.raises(RateLimitedError):
            await server.login("alice", forwarded_for="192.0.2.1, 203.0.113.9")
        other_client = await server.login("alice", forwarded_for="203.0.113.10")

    assert other_client.access_token


async def test_client_credentials_are_locked_out_per_client_id(
    sqlite_url: str, auth_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _serve(sqlite_url, auth_settings, monkeypatch) as server:
        async with server.service.database.session() as session:
            account = await create_service_account(
                session,
                TENANT,
                "payments-api",
                secret_hash=PasswordHasher().hash(CLIENT_SECRET),
                now=NOW,
            )
            client_id = account.client_id
        for _ in range(3):
            with pytest.raises(UnauthenticatedError):
                await server.client_credentials(client_id, "a wrong secret")
        with pytest.raises(RateLimitedError) as locked:
            await server.client_credentials(client_id, CLIENT_SECRET)
        for _ in range(3):
            with pytest.raises(UnauthenticatedError):
                await server.client_credentials("no-such-client", "a wrong secret")
        with pytest.raises(RateLimitedError) as locked_unknown:
            await server.client_credentials("no-such-client", CLIENT_SECRET)
        # Other names from the same address are untouched (its limit is 100 here).
        user_login = await server.login("alice")

    assert locked.value.reason == "LOGIN_THROTTLED"
    assert _answer(locked.value) == _answer(locked_unknown.value)
    assert user_login.access_token
