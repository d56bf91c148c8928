"""Provider keys from a real config service, end to end on 127.0.0.1: a real auth service
grants the llm service's service account its tokens, the config service reads a .env file,
and the scripted provider server (OpenAI's wire format) sees the key each call carries.

Every test scans what was logged, before and after redaction, for the keys it used: a key
must never reach a log line, whoever tried to write it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
import yaml
from pydantic import SecretStr
from structlog.typing import EventDict, WrappedLogger

from mainmast.config import ConfigClient
from mainmast.errors import FailedPreconditionError, UnavailableError
from mainmast.llm import Completion, LlmClient
from mainmast.logging import configure_logging, get_logger, reset_logging
from mainmast_config._testing import free_port, serve_config_service
from mainmast_config.settings import ConfigSettings
from mainmast_llm._config_secrets import ConfigServiceSecrets
from mainmast_llm.testing import running_llm_service

ACME = "tenants/acme"
SECRET_NAME = "providers/openai-key"
SECRET_VARIABLE = "PROVIDERS__OPENAI_KEY"  # how a .env file spells the secret's name
OPENAI_KEY = "sk-from-config-3f9c2e71ab"
ROTATED_KEY = "sk-rotated-in-config-8d04b6c5e2"
POLICY = f"""\
rules:
  - subjects: [{ACME}/serviceAccounts/llm-service]
    secrets: ["providers/*"]
"""

T = TypeVar("T")


# -- what was logged --------------------------------------------------------------------


@dataclass
class LoggedLines:
    """Every event as it was logged (before redaction) and every line as written (after)."""

    raw: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)

    def record(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """A structlog processor, first in the chain: the event before anything changes it."""
        self.raw.append(repr(event_dict))
        return event_dict

    def containing(self, value: str) -> list[str]:
        """The texts that carry `value`."""
        return [text[:300] for text in self.raw + self.rendered if value in text]

    @property
    def events(self) -> str:
        """All rendered lines as one text."""
        return "".join(self.rendered)


@pytest.fixture
def logged() -> Iterator[LoggedLines]:
    """Logging at DEBUG into memory, tapped before and after redaction; reset after."""
    lines = LoggedLines()

    class Sink(io.StringIO):
        def write(self, text: str) -> int:
            lines.rendered.append(text)
            return len(text)

    class RawHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.raw.append(record.getMessage())
            if record.exc_info:
                lines.raw.append("".join(traceback.format_exception(*record.exc_info)))

    configure_logging(level="DEBUG", json=True, stream=Sink())
    structlog.configure(processors=[lines.record, *structlog.get_config()["processors"]])
    handler = RawHandler(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger().removeHandler(handler)
        reset_logging()


# -- the fleet ---------------------------------------------------------------------------


def write_secret(env_file: Path, value: str) -> None:
    """Give the secret `value` in the config service's .env file, replaced in one step."""
    staged = env_file.with_name(env_file.name + ".new")
    staged.write_text(f"{SECRET_VARIABLE}={value}\n", encoding="utf-8")
    staged.replace(env_file)


def write_routing(folder: Path, provider_url: str) -> Path:
    """`gpt-4`: one OpenAI deployment whose key is the config service's secret, tried once."""
    routing_file = folder / "routing.yaml"
    document = {
        "models": {
            "gpt-4": {
                "deployments": [
                    {
                        "name": "openai-main",
                        "provider": "openai",
                        "model": "gpt-4o",
                        "base_url": f"{provider_url}/v1",
                        "key": {"secret": SECRET_NAME},
                        "max_attempts": 1,
                    }
                ]
            }
        }
    }
    routing_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    return routing_file


@dataclass
class Fleet:
    """What the tests start: paths, the auth service, the llm's credentials, a caller."""

    folder: Path
    auth: Any
    routing_file: Path
    env_file: Path
    caller: str = field(repr=False)
    client_id: str
    client_secret: str = field(repr=False)

    def config_service(self, **settings: Any) -> Any:
        """A config service reading the .env file, granting the llm's service account the
        `providers/*` secrets, polling for rotations often; `settings` override."""
        policy_file = self.folder / "policy.yaml"
        policy_file.write_text(POLICY, encoding="utf-8")
        chosen = {
            "listen": "127.0.0.1:0",
            "metrics_listen": "",
            "backends": ("dotenv",),
            "dotenv_path": self.env_file,
            "access_policy_file": policy_file,
            "auth_target": self.auth.target,
            "watch_poll_interval_seconds": 0.05,
            # The llm service's watch is a call in flight; stopping need not wait for it.
            "grace_period_seconds": 0.1,
            **settings,
        }
        return serve_config_service(ConfigSettings(**chosen))

    @asynccontextmanager
    async def llm(
        self, database_url: str, config_target: str, **settings: Any
    ) -> AsyncIterator[LlmClient]:
        """An llm service reading keys from `config_target` as the service account (unless
        `settings` say otherwise), and a client of it calling as an owner of acme."""
        credentials: dict[str, Any] = {
            "config_client_id": self.client_id,
            "config_client_secret": SecretStr(self.client_secret),
        }
        async with (
            running_llm_service(
                database_url,
                auth_target=self.auth.target,
                routing_file=self.routing_file,
                config_target=config_target,
                **{**credentials, **settings},
            ) as server,
            LlmClient(server.address, bearer_token=self.caller) as client,
        ):
            yield client


@pytest.fixture
async def fleet(tmp_path: Path, auth_server: Any, provider_server: Any, wires: Any) -> Fleet:
    """The auth service with the llm's service account and a caller; the provider server
    answering as OpenAI; the secret in the .env file."""

    async def answer(request: Any, reply: Any) -> None:
        await reply.send(200, wires["openai"].success_body)

    provider_server.handler = answer
    client_id, client_secret = await auth_server.service_account(ACME, "llm-service")
    env_file = tmp_path / "config.env"
    write_secret(env_file, OPENAI_KEY)
    return Fleet(
        folder=tmp_path,
        auth=auth_server,
        routing_file=write_routing(tmp_path, provider_server.url),
        env_file=env_file,
        caller=await auth_server.token(ACME, "olga", role="owner"),
        client_id=client_id,
        client_secret=client_secret,
    )


async def eventually(attempt: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """`attempt()` again until `done` says yes; UnavailableError counts as not yet."""
    async with asyncio.timeout(30):  # a bound on a hang, not a timing assertion
        while True:
            try:
                result = await attempt()
            except UnavailableError:
                pass
            else:
                if done(result):
                    return result
            await asyncio.sleep(0.05)


def keys_sent(provider_server: Any) -> list[str]:
    """The bearer key of each request the provider received, in order."""
    return [r.headers["authorization"].removeprefix("Bearer ") for r in provider_server.requests]


# -- the tests ---------------------------------------------------------------------------


async def test_the_key_from_the_config_service_reaches_the_provider_and_follows_a_rotation(
    fleet: Fleet, sqlite_url: str, provider_server: Any, logged: LoggedLines
) -> None:
    async with (
        fleet.config_service() as config,
        fleet.llm(sqlite_url, config.target) as llm,
    ):
        first = await llm.complete(prompt="hi", model="gpt-4")
        write_secret(fleet.env_file, ROTATED_KEY)
        await eventually(
            lambda: llm.complete(prompt="hi", model="gpt-4"),
            lambda _: keys_sent(provider_server)[-1] == ROTATED_KEY,
        )
        after = await llm.complete(prompt="hi", model="gpt-4")

    assert isinstance(first, Completion)
    assert (first.text, after.text) == ("Hello", "Hello")
    sent = keys_sent(provider_server)
    rotated_from = sent.index(ROTATED_KEY)
    assert sent[:rotated_from] == [OPENAI_KEY] * rotated_from
    assert sent[rotated_from:] == [ROTATED_KEY] * (len(sent) - rotated_from)  # never back
    assert '"llm.provider_keys_from_config_service"' in logged.events
    assert '"llm.provider_key_received"' in logged.events
    assert logged.containing(OPENAI_KEY) == []
    assert logged.containing(ROTATED_KEY) == []
    assert logged.containing(fleet.client_secret) == []


async def test_the_service_starts_while_the_config_service_is_down_and_reads_once_it_is_up(
    fleet: Fleet, sqlite_url: str, provider_server: Any, logged: LoggedLines
) -> None:
    port = free_port()
    async with fleet.llm(sqlite_url, f"127.0.0.1:{port}") as llm:
        with pytest.raises(UnavailableError) as down:
            await llm.complete(prompt="hi", model="gpt-4")
        async with fleet.config_service(listen=f"127.0.0.1:{port}"):
            answer = await eventually(
                lambda: llm.complete(prompt="hi", model="gpt-4"), lambda _: True
            )

    assert down.value.reason == "PROVIDER_KEY_UNAVAILABLE"
    assert down.value.metadata["key_name"] == SECRET_NAME
    assert "config-service secret providers/openai-key" in down.value.message
    assert answer.text == "Hello"
    assert keys_sent(provider_server) == [OPENAI_KEY]  # nothing was sent without the key
    assert logged.containing(OPENAI_KEY) == []


WRONG_CLIENT_SECRET = "not-the-client-secret-61c0d9"


@dataclass(frozen=True)
class Refusal:
    """Credentials the config service cannot accept, and what the error must say."""

    credentials: dict[str, Any]
    cause_reason: str
    named: str


@pytest.mark.parametrize(
    "refusal",
    [
        Refusal(
            {"config_client_secret": SecretStr(WRONG_CLIENT_SECRET)},
            "INVALID_CREDENTIALS",
            "MAINMAST_LLM_CONFIG_CLIENT_SECRET",
        ),
        Refusal(
            {"config_client_id": "", "config_client_secret": None},
            "CREDENTIALS_MISSING",
            "set MAINMAST_LLM_CONFIG_CLIENT_ID and MAINMAST_LLM_CONFIG_CLIENT_SECRET",
        ),
    ],
    ids=["wrong-secret", "no-credentials"],
)
async def test_credentials_the_config_service_cannot_accept_are_a_clear_error(
    fleet: Fleet, sqlite_url: str, provider_server: Any, logged: LoggedLines, refusal: Refusal
) -> None:
    async with (
        fleet.config_service() as config,
        fleet.llm(sqlite_url, config.target, **refusal.credentials) as llm,
    ):
        with pytest.raises(FailedPreconditionError) as refused:
            await llm.complete(prompt="hi", model="gpt-4")

    assert refused.value.reason == "PROVIDER_KEY_UNREADABLE"
    assert refusal.named in refused.value.message
    assert "openai-main" in refused.value.message
    assert refused.value.metadata["cause_reason"] == refusal.cause_reason
    assert provider_server.requests == []
    assert logged.containing(WRONG_CLIENT_SECRET) == []


async def test_a_config_service_in_dev_mode_is_read_without_credentials(
    fleet: Fleet, sqlite_url: str, provider_server: Any
) -> None:
    async with (
        fleet.config_service(auth_required=False) as config,
        fleet.llm(sqlite_url, config.target, config_client_id="", config_client_secret=None) as llm,
    ):
        answer = await llm.complete(prompt="hi", model="gpt-4")

    assert answer.text == "Hello"
    assert keys_sent(provider_server) == [OPENAI_KEY]


async def test_without_a_config_service_a_secret_key_stops_the_start_naming_the_setting(
    fleet: Fleet, sqlite_url: str
) -> None:
    with pytest.raises(FailedPreconditionError) as refused:
        async with fleet.llm(sqlite_url, "", config_client_id="", config_client_secret=None):
            pass

    assert refused.value.reason == "PROVIDER_KEY_MISSING"
    assert "set MAINMAST_LLM_CONFIG_TARGET" in refused.value.message


class RefusedFirstTokens:
    """A token provider whose token the config service refuses until it is forgotten."""

    def __init__(self, good: str) -> None:
        self.current = "a-token-the-config-service-refuses"
        self.good = good
        self.forgotten = 0

    async def __call__(self) -> str:
        return self.current

    def forget(self) -> None:
        self.forgotten += 1
        self.current = self.good

    async def close(self) -> None:
        pass


async def test_a_refused_token_is_forgotten_and_the_read_made_again_with_a_new_one(
    fleet: Fleet,
) -> None:
    granted = await fleet.auth.client.client_credentials(fleet.client_id, fleet.client_secret)
    tokens = RefusedFirstTokens(granted.access_token)
    async with fleet.config_service() as config:
        secrets = ConfigServiceSecrets(
            ConfigClient(config.target, token=tokens),
            tokens=tokens,  # stands in for ServiceAccountTokens
        )
        await secrets.start()
        try:
            value = await secrets.get_secret(SECRET_NAME)
        finally:
            await secrets.close()

    assert value == OPENAI_KEY
    assert tokens.forgotten == 1


def test_the_scan_sees_a_key_that_was_logged_before_redaction_hid_it(logged: LoggedLines) -> None:
    get_logger("test").warning(f"about to send {OPENAI_KEY}")

    assert logged.containing(OPENAI_KEY) != []
