"""The routing file: parsing, typed errors for bad files, defaults, order and prices."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from mainmast.errors import ValidationError
from mainmast_llm._completion import ProviderKind
from mainmast_llm._dev import DEV_MODEL
from mainmast_llm._routing import (
    DEV_ALIAS,
    KeyReference,
    KeySource,
    default_routing,
    load_routing,
    ordered_deployments,
    parse_routing,
    parse_routing_text,
)
from mainmast_llm._usage import ModelPrice

ROUTING_FILE = """
models:
  gpt-4:
    deployments:
      - name: openai-eu
        provider: openai
        model: gpt-4o
        base_url: https://api.openai.com/v1
        key: {env: OPENAI_API_KEY}
        timeout_seconds: 20
        max_attempts: 3
        failure_threshold: 4
        cool_down_seconds: 15
        max_concurrent_requests: 64
      - name: azure-eu
        provider: azure_openai
        endpoint: https://example.openai.azure.com
        azure_deployment: chat-prod
        api_version: 2024-10-21
        key: {secret: azure-openai-key}
  llama2:
    deployments:
      - name: ollama-local
        provider: ollama
        model: llama2
        base_url: http://127.0.0.1:11434
prices:
  gpt-4o: {prompt_per_1k: 0.0025, completion_per_1k: 0.01}
  chat-prod: {prompt_per_1k: 0.003, completion_per_1k: 0}
"""


def violations_of(document) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        parse_routing(document)
    assert caught.value.reason == "INVALID_ROUTING_FILE"
    assert caught.value.domain == "llm.mainmast.dev"
    return {v.field: v.description for v in caught.value.field_violations}


def one_deployment(**fields):
    return {"models": {"m": {"deployments": [{"name": "d", **fields}]}}}


def test_a_routing_file_is_parsed_into_aliases_deployments_and_prices(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_FILE)

    table = load_routing(path)

    assert sorted(table.aliases) == ["gpt-4", "llama2"]
    openai, azure = table.aliases["gpt-4"].deployments
    assert (openai.name, openai.provider, openai.model) == (
        "openai-eu",
        ProviderKind.OPENAI,
        "gpt-4o",
    )
    assert openai.key == KeyReference(KeySource.ENVIRONMENT, "OPENAI_API_KEY")
    assert (openai.timeout_seconds, openai.max_attempts) == (20, 3)
    assert (openai.failure_threshold, openai.cool_down_seconds) == (4, 15)
    assert (openai.max_concurrent_requests, azure.max_concurrent_requests) == (64, None)
    assert (openai.priority, azure.priority) == (0, 1)
    assert azure.key == KeyReference(KeySource.CONFIG_SECRET, "azure-openai-key")
    assert (azure.endpoint, azure.azure_deployment, azure.model) == (
        "https://example.openai.azure.com",
        "chat-prod",
        "chat-prod",
    )
    assert azure.api_version == "2024-10-21"
    ollama = table.aliases["llama2"].deployments[0]
    assert ollama.key is None
    assert table.price_of(openai) == ModelPrice(Decimal("0.0025"), Decimal("0.01"))
    assert table.price_of(ollama) is None
    assert table.price_of(openai).cost_micros(1000, 2000) == 22_500


def test_with_no_file_the_only_alias_is_dev_on_the_dev_provider():
    table = default_routing()

    assert list(table.aliases) == [DEV_ALIAS]
    (deployment,) = table.aliases[DEV_ALIAS].deployments
    assert (deployment.provider, deployment.model) == (ProviderKind.DEV, DEV_MODEL)


def test_a_file_with_real_providers_has_no_dev_alias_unless_it_says_so():
    table = parse_routing_text(ROUTING_FILE)

    assert table.alias(DEV_ALIAS) is None
    providers = {d.provider for a in table.aliases.values() for d in a.deployments}
    assert ProviderKind.DEV not in providers


def test_a_key_written_into_the_file_is_refused_without_being_echoed():
    key = "sk-live-0123456789abcdef"
    with pytest.raises(ValidationError) as caught:
        parse_routing(one_deployment(provider="openai", model="gpt-4o", key=key))

    assert caught.value.field_violations[0].field == "models.m.deployments[0].key"
    assert "never the key itself" in caught.value.message
    assert key not in caught.value.message
    assert all(key not in v.description for v in caught.value.field_violations)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"provider": "nope", "model": "x"}, "models.m.deployments[0].provider", "Input should"),
        ({"provider": "openai"}, "models.m.deployments[0]", "`model` is required"),
        (
            {"provider": "azure_openai", "key": {"env": "K"}, "endpoint": "https://x"},
            "models.m.deployments[0]",
            "needs `endpoint` and `azure_deployment`",
        ),
        ({"provider": "anthropic", "model": "c"}, "models.m.deployments[0]", "needs `key`"),
        (
            {"provider": "ollama", "model": "l", "key": {"env": "K"}},
            "models.m.deployments[0]",
            "takes no `key`",
        ),
        (
            {"provider": "openai", "model": "g", "endpoint": "https://x"},
            "models.m.deployments[0]",
            "azure_openai deployments only",
        ),
        (
            {"provider": "openai", "model": "g", "key": {"env": "A", "secret": "b"}},
            "models.m.deployments[0].key",
            "exactly one",
        ),
        (
            {"provider": "openai", "model": "g", "weight": 0},
            "models.m.deployments[0].weight",
            "greater",
        ),
        (
            {"provider": "openai", "model": "g", "max_attempts": 0},
            "models.m.deployments[0].max_attempts",
            "greater",
        ),
        (
            {"provider": "openai", "model": "g", "max_concurrent_requests": 0},
            "models.m.deployments[0].max_concurrent_requests",
            "greater",
        ),
        (
            {"provider": "dev", "model": "gpt-4o"},
            "models.m.deployments[0]",
            "the dev provider's only model",
        ),
        (
            {"provider": "openai", "model": "g", "timeout_seconds": -1},
            "models.m.deployments[0].timeout_seconds",
            "greater",
        ),
        (
            {"provider": "openai", "model": "g", "base_url": "ftp://x"},
            "models.m.deployments[0].base_url",
            "pattern",
        ),
        (
            {"provider": "openai", "model": "g", "api_key": "sk-x"},
            "models.m.deployments[0].api_key",
            "not permitted",
        ),
    ],
)
def test_each_mistake_in_a_deployment_is_a_field_violation(fields, field, words):
    violations = violations_of(one_deployment(**fields))

    assert field in violations
    assert words in violations[field]


def test_every_violation_of_a_file_is_reported_at_once():
    violations = violations_of(
        {
            "models": {
                "a": {"deployments": [{"name": "x", "provider": "openai", "model": "g"}]},
                "b": {"deployments": [{"name": "x", "provider": "openai", "model": "g"}]},
            }
        }
    )

    assert violations == {
        "models.b.deployments[0].name": "the name is already used at models.a.deployments[0].name"
    }
    violations = violations_of(
        {
            "models": {"a": {"deployments": []}},
            "prices": {"g": {"prompt_per_1k": -1, "completion_per_1k": "free"}},
            "extra": 1,
        }
    )
    assert set(violations) == {
        "models.a.deployments",
        "prices.g.prompt_per_1k",
        "prices.g.completion_per_1k",
        "extra",
    }


@pytest.mark.parametrize("document", [None, [], "models", {"models": {}}])
def test_a_document_of_the_wrong_shape_is_refused(document):
    with pytest.raises(ValidationError, match="routing file is invalid"):
        parse_routing(document)


def test_yaml_that_does_not_parse_is_a_validation_error():
    with pytest.raises(ValidationError, match="not valid YAML"):
        parse_routing_text("models: [unclosed")


def test_a_missing_file_is_a_validation_error(tmp_path):
    with pytest.raises(ValidationError, match="cannot be read"):
        load_routing(tmp_path / "absent.yaml")


def weighted_alias():
    return parse_routing(
        {
            "models": {
                "m": {
                    "deployments": [
                        {"name": "a", "provider": "dev", "priority": 0, "weight": 3},
                        {"name": "b", "provider": "dev", "priority": 0, "weight": 1},
                        {"name": "c", "provider": "dev", "priority": 5},
                    ]
                }
            }
        }
    ).aliases["m"]


def test_without_priorities_the_list_order_is_the_fallback_order():
    table = parse_routing_text(ROUTING_FILE)

    order = ordered_deployments(table.aliases["gpt-4"], random=lambda: 0.99)

    assert [d.name for d in order] == ["openai-eu", "azure-eu"]


@pytest.mark.parametrize(("draw", "first"), [(0.0, "a"), (0.74, "a"), (0.75, "b"), (0.99, "b")])
def test_equal_priorities_share_the_first_place_by_weight(draw, first):
    order = ordered_deployments(weighted_alias(), random=lambda: draw)

    assert order[0].name == first
    assert sorted(d.name for d in order[:2]) == ["a", "b"]
    assert order[2].name == "c"


def test_weighted_order_over_many_draws_gives_each_its_share():
    draws = itertools.cycle(i / 100 for i in range(100))
    firsts = [
        ordered_deployments(weighted_alias(), random=lambda: next(draws))[0].name
        for _ in range(400)
    ]

    assert firsts.count("a") / len(firsts) == pytest.approx(0.75, abs=0.05)
