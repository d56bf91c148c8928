"""mainmast.llm.LlmClient against a real llm service on 127.0.0.1: the dev provider, the
scripted provider server of conftest (OpenAI and Ollama wire formats) and a real auth
service for the callers' tokens."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from mainmast.errors import (
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
)
from mainmast.llm import (
    AttemptOutcome,
    Completion,
    FinishReason,
    LlmClient,
    LlmClientConfig,
    Message,
    Provider,
    TextDelta,
    Usage,
)
from mainmast_llm._dev import DEV_NOTICE
from mainmast_llm.testing import running_llm_service

OPENAI_KEY = "sk-llm-client-test-2c9e41"


def write_routing(path: Path, url: str) -> Path:
    """`gpt-4`: one OpenAI deployment at /openai; `llama2`: one Ollama deployment at
    /ollama; both tried once."""
    document = {
        "models": {
            "gpt-4": {
                "deployments": [
                    {
                        "name": "openai-main",
                        "provider": "openai",
                        "model": "gpt-4o",
                        "base_url": f"{url}/openai/v1",
                        "key": {"env": "OPENAI_KEY"},
                        "max_attempts": 1,
                    }
                ]
            },
            "llama2": {
                "deployments": [
                    {
                        "name": "ollama-local",
                        "provider": "ollama",
                        "model": "llama3.2",
                        "base_url": f"{url}/ollama",
                        "max_attempts": 1,
                    }
                ]
            },
        },
        "prices": {"gpt-4o": {"prompt_per_1k": 1, "completion_per_1k": 2}},
    }
    routing_file = path / "routing.yaml"
    routing_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    return routing_file


@asynccontextmanager
async def llm_client(
    database_url: str, *, bearer_token: Any = None, **options: Any
) -> AsyncIterator[LlmClient]:
    """A connected LlmClient of an llm service (see `running_llm_service`), both closed after."""
    async with (
        running_llm_service(database_url, environ={"OPENAI_KEY": OPENAI_KEY}, **options) as server,
        LlmClient(server.address, bearer_token=bearer_token) as client,
    ):
        yield client


def answering(wires: Any, *, openai_status: int = 200) -> Any:
    """A handler: OpenAI answers with `openai_status`, Ollama answers "Hello"."""

    async def handle(request: Any, reply: Any) -> None:
        if request.path.startswith("/ollama/"):
            await reply.send(200, wires["ollama"].success_body)
        elif openai_status == 200:
            await reply.send(200, wires["openai"].success_body)
        else:
            await reply.send(openai_status, wires["openai"].error_body("overloaded"))

    return handle


async def test_the_seed_call_falls_back_to_llama2_and_says_how(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    provider_server.handler = answering(wires, openai_status=503)
    routing_file = write_routing(tmp_path, provider_server.url)
    async with llm_client(sqlite_url, routing_file=routing_file) as llm:
        answer = await llm.complete(
            prompt="Summarize this document", model="gpt-4", fallback_model="llama2"
        )

    assert isinstance(answer, Completion)
    assert answer.text == "Hello"
    assert (answer.model_alias, answer.deployment, answer.provider) == (
        "llama2",
        "ollama-local",
        Provider.OLLAMA,
    )
    assert (answer.finish_reason, answer.provider_finish_reason) == (FinishReason.STOP, "stop")
    assert answer.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    assert [
        (a.model_alias, a.deployment, a.outcome, a.upstream_http_status) for a in answer.attempts
    ] == [
        ("gpt-4", "openai-main", AttemptOutcome.SERVER_ERROR, 503),
        ("llama2", "ollama-local", AttemptOutcome.SUCCEEDED, 0),
    ]
    assert answer.latency >= max(attempt.latency for attempt in answer.attempts)
    (ollama_request,) = [r for r in provider_server.requests if r.path == "/ollama/api/chat"]
    assert ollama_request.json()["messages"] == [
        {"role": "user", "content": "Summarize this document"}
    ]


async def test_every_option_reaches_the_provider(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    provider_server.handler = answering(wires)
    routing_file = write_routing(tmp_path, provider_server.url)
    async with llm_client(sqlite_url, routing_file=routing_file) as llm:
        answer = await llm.complete(
            model="gpt-4",
            messages=[
                Message.user("Name a colour."),
                {"role": "assistant", "content": "Blue."},
                Message.user("Another, as JSON."),
            ],
            system="Answer briefly.",
            temperature=0.2,
            max_tokens=50,
            stop="END",
            json_mode=True,
            timeout=30,
        )

    (request,) = provider_server.requests
    body = request.json()
    assert answer.provider is Provider.OPENAI
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another, as JSON."},
    ]
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (0.2, 50, ["END"])
    assert body["response_format"] == {"type": "json_object"}
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"


async def test_a_stream_yields_deltas_then_the_completion_with_its_usage(sqlite_url: str) -> None:
    async with llm_client(sqlite_url) as llm:
        events = [event async for event in llm.stream(prompt="Say hello", model="dev")]

    *deltas, last = events
    assert deltas
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert isinstance(last, Completion)
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == last.text
    assert last.text == f"{DEV_NOTICE} Say hello"
    assert last.provider is Provider.DEV
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens


async def test_leaving_a_stream_early_cancels_the_call_and_the_upstream_request(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    openai = wires["openai"]

    async def handle(request: Any, reply: Any) -> None:
        await reply.start(200, openai.stream_content_type)
        await reply.write(openai.preamble + openai.delta("Hel"))
        await reply.wait_for_client_close()

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url)
    async with llm_client(sqlite_url, routing_file=routing_file) as llm:
        received = []
        async for event in llm.stream(prompt="Tell a long story", model="gpt-4"):
            received.append(event)
            break
        await provider_server.client_closed.wait()

    assert received == [TextDelta("Hel")]


async def test_models_are_listed_with_their_deployments(
    sqlite_url: str, tmp_path: Path, provider_server: Any
) -> None:
    routing_file = write_routing(tmp_path, provider_server.url)
    async with llm_client(sqlite_url, routing_file=routing_file) as llm:
        models = await llm.list_models()

    assert [model.alias for model in models] == ["gpt-4", "llama2"]
    (deployment,) = models[0].deployments
    assert (deployment.name, deployment.provider, deployment.model) == (
        "openai-main",
        Provider.OPENAI,
        "gpt-4o",
    )


async def usage_once_recorded(llm: LlmClient, now: datetime) -> list[Any]:
    """Today's usage, asked again until the ledger (which writes in batches) has some."""
    while True:
        usage = await llm.get_usage(start=now - timedelta(days=1), end=now + timedelta(days=1))
        if usage:
            return usage
        await asyncio.sleep(0.1)


async def complete_until_refused(llm: LlmClient) -> None:
    """Complete a short prompt again and again (at most 40 times) until it is refused."""
    for _ in range(40):
        await llm.complete(prompt="hi", model="dev", max_tokens=5)


async def test_usage_is_read_by_day_with_its_cost(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    provider_server.handler = answering(wires)
    routing_file = write_routing(tmp_path, provider_server.url)
    now = datetime.now(UTC)
    async with llm_client(sqlite_url, routing_file=routing_file) as llm:
        await llm.complete(prompt="Say hello", model="gpt-4")
        usage = await usage_once_recorded(llm, now)
        with pytest.raises(ValidationError) as naive:
            await llm.get_usage(start=datetime(2026, 1, 1), end=now)

    (day,) = usage
    assert (day.tenant, day.model_alias, day.date) == ("tenants/dev", "gpt-4", now.date())
    assert (day.request_count, day.failed_request_count) == (1, 0)
    assert (day.prompt_tokens, day.completion_tokens) == (3, 2)
    # 3 prompt tokens at 1 and 2 completion tokens at 2 per 1,000.
    assert (day.cost_micros, day.cost, day.currency_code) == (7000, Decimal("0.007"), "USD")
    assert naive.value.field_violations[0].field == "start_time"


async def test_service_errors_arrive_as_mainmast_errors_with_their_details(
    sqlite_url: str,
) -> None:
    async with llm_client(sqlite_url, daily_tokens=40) as llm:
        with pytest.raises(NotFoundError) as unknown:
            await llm.complete(prompt="hi", model="gpt-5")
        with pytest.raises(RateLimitedError) as spent:
            await complete_until_refused(llm)

    assert (unknown.value.reason, unknown.value.metadata["model"]) == ("MODEL_NOT_FOUND", "gpt-5")
    assert spent.value.reason == "BUDGET_EXHAUSTED"
    assert spent.value.retry_after is not None
    assert spent.value.retry_after > timedelta(0)
    assert [v.subject for v in spent.value.quota_violations] == ["tenant:dev"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "hi", "messages": [Message.user("hi")]}, "prompt"),
        ({"prompt": "hi", "fallback_model": "a", "fallback_models": ["b"]}, "fallback_model"),
        ({"messages": [{"role": "system", "content": "be brief"}]}, "messages[0].role"),
    ],
    ids=["neither", "both", "two-fallback-spellings", "system-role"],
)
async def test_contradictory_arguments_are_refused_before_any_call(
    arguments: dict[str, Any], field: str
) -> None:
    llm = LlmClient()  # never connected: nothing is sent

    with pytest.raises(ValidationError) as refused:
        await llm.complete(model="dev", **arguments)

    assert refused.value.reason == "INVALID_COMPLETION_INPUT"
    assert [v.field for v in refused.value.field_violations] == [field]


async def test_the_bearer_token_is_sent_from_a_string_or_an_async_provider(
    sqlite_url: str, auth_server: Any
) -> None:
    owner = await auth_server.token("tenants/acme", "olga", role="owner")
    member = await auth_server.token("tenants/acme", "mia")
    asked = 0

    async def current_token() -> str:
        nonlocal asked
        asked += 1
        return owner

    async with running_llm_service(sqlite_url, auth_target=auth_server.target) as server:
        async with LlmClient(server.address, bearer_token=current_token) as llm:
            answer = await llm.complete(prompt="hi", model="dev")
            models = await llm.list_models()
        async with LlmClient(server.address, bearer_token=member) as llm:
            with pytest.raises(PermissionDeniedError) as denied:
                await llm.complete(prompt="hi", model="dev")
            with pytest.raises(PermissionDeniedError):
                [event async for event in llm.stream(prompt="hi", model="dev")]
        async with LlmClient(server.address) as llm:
            with pytest.raises(UnauthenticatedError) as anonymous:
                await llm.complete(prompt="hi", model="dev")

    assert answer.provider is Provider.DEV
    assert [model.alias for model in models] == ["dev"]
    assert asked == 2
    assert denied.value.metadata == {"permission": "llm:complete"}
    assert anonymous.value.reason == "CREDENTIALS_MISSING"


async def test_connecting_to_nothing_is_unavailable_and_calls_need_a_connection() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{unused.getsockname()[1]}"
    llm = LlmClient(config=LlmClientConfig(target=target, connect_timeout_seconds=0.2))

    with pytest.raises(UnavailableError) as refused:
        await llm.connect()
    with pytest.raises(RuntimeError, match="connect"):
        await llm.list_models()

    assert refused.value.metadata == {"target": target}


def test_a_config_needs_a_target_and_positive_timeouts() -> None:
    with pytest.raises(ValueError, match="target"):
        LlmClientConfig(target="")
    with pytest.raises(ValueError, match="call_timeout_seconds"):
        LlmClientConfig(call_timeout_seconds=0)
