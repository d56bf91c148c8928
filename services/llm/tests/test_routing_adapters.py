"""Adapters built from a routing file, keys looked up where it says, against a local server:
environment keys read at the build, config-service secrets at every call (rotations followed,
a key that cannot be read no verdict on the deployment)."""

from __future__ import annotations

import pytest

from mainmast.errors import FailedPreconditionError, NotFoundError, UnavailableError
from mainmast_llm._breaker import BreakerState
from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    ProviderKind,
    Role,
)
from mainmast_llm._dev import DevAdapter
from mainmast_llm._http_call import deadline_after
from mainmast_llm._router import Router
from mainmast_llm._routing import default_routing, parse_routing
from mainmast_llm._routing_adapters import build_adapters
from mainmast_llm._routing_results import AttemptOutcome, attempts_of

REQUEST = CompletionRequest(messages=(ChatMessage(Role.USER, "Say hello"),))
OPENAI_KEY = "sk-env-9f8e7d6c5b4a3210"
ANTHROPIC_KEY = "sk-ant-secret-0a1b2c3d4e5f"


def routing_for(url):
    return parse_routing(
        {
            "models": {
                "gpt-4": {
                    "deployments": [
                        {
                            "name": "openai",
                            "provider": "openai",
                            "model": "gpt-4o",
                            "base_url": url + "/v1",
                            "key": {"env": "TEST_OPENAI_KEY"},
                        }
                    ]
                },
                "claude": {
                    "deployments": [
                        {
                            "name": "anthropic",
                            "provider": "anthropic",
                            "model": "claude-sonnet-4-0",
                            "base_url": url,
                            "key": {"secret": "anthropic-key"},
                        },
                        {
                            "name": "local",
                            "provider": "ollama",
                            "model": "llama3.2",
                            "base_url": url,
                        },
                    ]
                },
            }
        }
    )


class ConfigSecrets:
    """A config service's secrets, as the service reads them: NotFoundError for others."""

    def __init__(self, values, *, failure=None):
        self.values = values
        self.failure = failure

    async def get_secret(self, name):
        if self.failure is not None:
            raise self.failure
        if name not in self.values:
            raise NotFoundError("Secret", name)
        return self.values[name]


CONFIG = ConfigSecrets({"anthropic-key": ANTHROPIC_KEY})


async def test_adapters_carry_the_keys_from_the_environment_and_the_config_service(
    wires, provider_server, http_client
):
    async def handle(request, reply):
        wire = wires["openai"] if request.path == "/v1/chat/completions" else wires["anthropic"]
        await reply.send(200, wire.success_body)

    provider_server.handler = handle
    adapters = await build_adapters(
        routing_for(provider_server.url),
        http_client,
        environ={"TEST_OPENAI_KEY": OPENAI_KEY},
        secrets=CONFIG,
    )
    router = Router(routing_for(provider_server.url), adapters)

    gpt = await router.complete(REQUEST, model="gpt-4", deadline=deadline_after(30))
    claude = await router.complete(REQUEST, model="claude", deadline=deadline_after(30))

    assert (gpt.response.provider, claude.response.provider) == (
        ProviderKind.OPENAI,
        ProviderKind.ANTHROPIC,
    )
    openai_request, anthropic_request = provider_server.requests
    assert openai_request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert anthropic_request.headers["x-api-key"] == ANTHROPIC_KEY
    assert adapters["local"].provider is ProviderKind.OLLAMA


@pytest.mark.parametrize(
    ("environ", "secrets", "missing"),
    [
        ({}, CONFIG, "environment variable TEST_OPENAI_KEY"),
        ({"TEST_OPENAI_KEY": OPENAI_KEY}, None, "set MAINMAST_LLM_CONFIG_TARGET"),
    ],
)
async def test_a_missing_key_stops_the_build_naming_where_it_was_looked_for(
    environ, secrets, missing, http_client
):
    with pytest.raises(FailedPreconditionError) as caught:
        await build_adapters(
            routing_for("http://127.0.0.1:1"), http_client, environ=environ, secrets=secrets
        )

    assert caught.value.reason == "PROVIDER_KEY_MISSING"
    assert missing in caught.value.message


async def test_the_zero_config_routing_builds_the_dev_adapter(http_client):
    adapters = await build_adapters(default_routing(), http_client, environ={})

    assert isinstance(adapters["dev"], DevAdapter)


def claude_only(url, *, failure_threshold=5):
    return parse_routing(
        {
            "models": {
                "claude": {
                    "deployments": [
                        {
                            "name": "anthropic",
                            "provider": "anthropic",
                            "model": "claude-sonnet-4-0",
                            "base_url": url,
                            "key": {"secret": "anthropic-key"},
                            "max_attempts": 1,
                            "failure_threshold": failure_threshold,
                        }
                    ]
                }
            }
        }
    )


async def test_a_missing_secret_fails_its_call_not_the_build(http_client):
    adapters = await build_adapters(
        claude_only("http://127.0.0.1:1"), http_client, environ={}, secrets=ConfigSecrets({})
    )
    router = Router(claude_only("http://127.0.0.1:1"), adapters)

    with pytest.raises(FailedPreconditionError) as caught:
        await router.complete(REQUEST, model="claude", deadline=deadline_after(30))

    assert caught.value.reason == "PROVIDER_KEY_MISSING"
    assert "secret anthropic-key" in caught.value.message


async def test_a_rotated_secret_is_sent_from_the_next_call_on(wire_server):
    config = ConfigSecrets({"anthropic-key": ANTHROPIC_KEY})
    router = await wire_server.router(config)
    rotated = ANTHROPIC_KEY + "-rotated"

    await router.complete(REQUEST, model="claude", deadline=deadline_after(30))
    config.values["anthropic-key"] = rotated
    await router.complete(REQUEST, model="claude", deadline=deadline_after(30))
    events = [
        event async for event in router.stream(REQUEST, model="claude", deadline=deadline_after(30))
    ]

    assert [r.headers["x-api-key"] for r in wire_server.requests] == [
        ANTHROPIC_KEY,
        rotated,
        rotated,
    ]
    assert isinstance(events[-1].response, CompletionResponse)


async def test_a_key_that_cannot_be_read_gives_the_breaker_no_verdict(wire_server):
    config = ConfigSecrets(
        {"anthropic-key": ANTHROPIC_KEY},
        failure=UnavailableError("The config service is not answering."),
    )
    router = await wire_server.router(config, failure_threshold=1)

    failures = []
    for _ in range(3):
        with pytest.raises(UnavailableError) as caught:
            await router.complete(REQUEST, model="claude", deadline=deadline_after(30))
        failures.append(caught.value)
    config.failure = None
    answered = await router.complete(REQUEST, model="claude", deadline=deadline_after(30))

    assert {failure.reason for failure in failures} == {"PROVIDER_KEY_UNAVAILABLE"}
    assert [(a.outcome, a.error_reason) for a in attempts_of(failures[-1])] == [
        (AttemptOutcome.REJECTED, "PROVIDER_KEY_UNAVAILABLE")
    ]
    assert router.breaker("anthropic").state is BreakerState.CLOSED
    assert router.breaker("anthropic").consecutive_failures == 0
    assert answered.deployment == "anthropic"
    assert len(wire_server.requests) == 1  # nothing was sent without a key


class WireServer:
    """The provider server answering as Anthropic, and routers over it."""

    def __init__(self, provider_server, http_client, wires):
        self._server = provider_server
        self._client = http_client
        self._wire = wires["anthropic"]
        provider_server.handler = self._answer

    @property
    def requests(self):
        return self._server.requests

    async def router(self, secrets, *, failure_threshold=5):
        routing = claude_only(self._server.url, failure_threshold=failure_threshold)
        adapters = await build_adapters(routing, self._client, environ={}, secrets=secrets)
        return Router(routing, adapters)

    async def _answer(self, request, reply):
        if request.headers.get("accept") == "text/event-stream" or request.json().get("stream"):
            await reply.start(200, self._wire.stream_content_type)
            await reply.write(self._wire.preamble + self._wire.delta("Hello") + self._wire.ending)
            await reply.finish()
        else:
            await reply.send(200, self._wire.success_body)


@pytest.fixture
def wire_server(provider_server, http_client, wires):
    """The provider server answering as Anthropic, complete or streamed."""
    return WireServer(provider_server, http_client, wires)
