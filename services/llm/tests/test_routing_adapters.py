"""Adapters built from a routing file, keys looked up where it says, against a local server."""

from __future__ import annotations

import pytest

from mainmast.errors import FailedPreconditionError, NotFoundError
from mainmast_llm._completion import ChatMessage, CompletionRequest, ProviderKind, Role
from mainmast_llm._dev import DevAdapter
from mainmast_llm._http_call import deadline_after
from mainmast_llm._router import Router
from mainmast_llm._routing import default_routing, parse_routing
from mainmast_llm._routing_adapters import build_adapters

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

    def __init__(self, values):
        self.values = values

    async def get_secret(self, name):
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
        ({"TEST_OPENAI_KEY": OPENAI_KEY}, None, "no config service"),
        ({"TEST_OPENAI_KEY": OPENAI_KEY}, ConfigSecrets({}), "secret anthropic-key"),
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
