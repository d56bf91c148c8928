"""LlmService over a real server: ServiceServer on 127.0.0.1, a SQLite ledger, the dev
provider and the scripted provider server of conftest speaking OpenAI's wire format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import yaml
from google.protobuf import timestamp_pb2

from mainmast.errors import (
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnauthenticatedError,
    ValidationError,
    translate_rpc_errors,
)
from mainmast.llm.v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2
from mainmast.runtime import Metadata, Principal, ServiceServer
from mainmast_llm._dev import DEV_NOTICE
from mainmast_llm._servicer import call_deadline
from mainmast_llm.service import DEV_PRINCIPAL, LlmService
from mainmast_llm.settings import LlmSettings

OPENAI_KEY = "sk-servicer-test-5b1e9d0c7a3f"
Outcome = resources_pb2.Attempt.Outcome


@asynccontextmanager
async def serving(
    database_url: str, *, authenticate: Any = None, **settings: Any
) -> AsyncIterator[llm_service_pb2_grpc.LlmServiceStub]:
    """An LlmService on 127.0.0.1:0 and a stub on a channel to it, both closed after."""
    service = LlmService(
        LlmSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            database_url=database_url,
            http_trust_env=False,
            **settings,
        ),
        authenticate=authenticate,
        environ={"OPENAI_KEY": OPENAI_KEY},
    )
    async with (
        ServiceServer(service) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        yield llm_service_pb2_grpc.LlmServiceStub(channel)


def user_input(text: str = "Say hello", **fields: Any) -> resources_pb2.CompletionInput:
    return resources_pb2.CompletionInput(
        messages=[resources_pb2.Message(role=resources_pb2.ROLE_USER, content=text)], **fields
    )


def write_routing(path: Path, url: str) -> Path:
    """Alias `gpt-4`: deployment `primary`, then `secondary`, each tried once."""
    deployments = [
        {
            "name": name,
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": f"{url}/{name}/v1",
            "key": {"env": "OPENAI_KEY"},
            "max_attempts": 1,
        }
        for name in ("primary", "secondary")
    ]
    document = {
        "models": {"gpt-4": {"deployments": deployments}},
        "prices": {"gpt-4o": {"prompt_per_1k": 1, "completion_per_1k": 2}},
    }
    routing_file = path / "routing.yaml"
    routing_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    return routing_file


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


def today_range() -> dict[str, timestamp_pb2.Timestamp]:
    now = datetime.now(UTC)
    return {
        "start_time": timestamp(now - timedelta(days=1)),
        "end_time": timestamp(now + timedelta(days=1)),
    }


async def usage_once_recorded(
    stub: llm_service_pb2_grpc.LlmServiceStub, requests: int, **fields: Any
) -> llm_service_pb2.GetUsageResponse:
    """GetUsage, asked again until the ledger's batches hold `requests` calls."""
    while True:
        answer = await stub.GetUsage(llm_service_pb2.GetUsageRequest(**today_range(), **fields))
        if sum(usage.request_count for usage in answer.daily_usages) >= requests:
            return answer
        await asyncio.sleep(0.1)


async def complete_until_refused(
    stub: llm_service_pb2_grpc.LlmServiceStub,
    request: llm_service_pb2.CompleteRequest,
    served: list[llm_service_pb2.CompleteResponse],
) -> None:
    """Complete `request` again and again (at most 40 times) until the service refuses."""
    async with translate_rpc_errors():
        # Each call reserves its estimate (12 tokens) and settles what it used, so a few
        # calls fit before the budget refuses one.
        for _ in range(40):
            served.append(await stub.Complete(request, timeout=30))


async def test_zero_config_completes_streams_and_lists_with_the_dev_provider(
    sqlite_url: str,
) -> None:
    async with serving(sqlite_url) as stub:
        answer = await stub.Complete(
            llm_service_pb2.CompleteRequest(input=user_input(model="dev")), timeout=30
        )
        pieces = [
            message
            async for message in stub.StreamComplete(
                llm_service_pb2.StreamCompleteRequest(input=user_input(model="dev")), timeout=30
            )
        ]
        models = await stub.ListModels(llm_service_pb2.ListModelsRequest())

    completion = answer.completion
    assert completion.text == f"{DEV_NOTICE} Say hello"
    assert completion.provider == resources_pb2.PROVIDER_DEV
    assert (completion.model_alias, completion.deployment) == ("dev", "dev")
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert [a.outcome for a in completion.attempts] == [Outcome.OUTCOME_SUCCEEDED]

    *deltas, last = pieces
    assert deltas
    assert all(piece.WhichOneof("event") == "delta" for piece in deltas)
    assert last.WhichOneof("event") == "completion"
    assert "".join(piece.delta.text for piece in deltas) == last.completion.text == completion.text
    assert last.completion.usage == completion.usage
    assert [a.outcome for a in last.completion.attempts] == [Outcome.OUTCOME_SUCCEEDED]

    assert [model.alias for model in models.models] == ["dev"]
    assert models.next_page_token == ""


async def test_a_failing_primary_falls_over_and_the_usage_is_recorded(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    openai = wires["openai"]

    async def handle(request: Any, reply: Any) -> None:
        if request.path.startswith("/primary/"):
            await reply.send(503, openai.error_body("overloaded"))
        else:
            await reply.send(200, openai.success_body)

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url)
    async with serving(sqlite_url, routing_file=routing_file) as stub:
        answer = await stub.Complete(
            llm_service_pb2.CompleteRequest(input=user_input(model="gpt-4")), timeout=30
        )
        usage = await usage_once_recorded(stub, 1)

    completion = answer.completion
    assert completion.text == "Hello"
    assert (completion.deployment, completion.model_alias) == ("secondary", "gpt-4")
    assert [(a.deployment, a.outcome, a.upstream_http_status) for a in completion.attempts] == [
        ("primary", Outcome.OUTCOME_SERVER_ERROR, 503),
        ("secondary", Outcome.OUTCOME_SUCCEEDED, 0),
    ]
    assert [r.path for r in provider_server.requests] == [
        "/primary/v1/chat/completions",
        "/secondary/v1/chat/completions",
    ]
    assert all(
        r.headers["authorization"] == f"Bearer {OPENAI_KEY}" for r in provider_server.requests
    )
    (day,) = usage.daily_usages
    assert (day.tenant, day.model_alias) == (f"tenants/{DEV_PRINCIPAL.tenant}", "gpt-4")
    assert day.date == datetime.now(UTC).date().isoformat()
    assert (day.request_count, day.failed_request_count) == (1, 0)
    assert (day.prompt_tokens, day.completion_tokens) == (3, 2)
    # 3 prompt tokens at 1 and 2 completion tokens at 2 per 1,000: 0.007 USD.
    assert (day.cost_micros, day.currency_code) == (7000, "USD")


async def test_a_provider_400_is_invalid_argument_without_fallback_and_counts_as_failed(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    async def handle(request: Any, reply: Any) -> None:
        await reply.send(400, wires["openai"].error_body("max_tokens is too large"))

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url)
    async with serving(sqlite_url, routing_file=routing_file) as stub:
        with pytest.raises(ValidationError) as caught:
            async with translate_rpc_errors():
                await stub.Complete(
                    llm_service_pb2.CompleteRequest(input=user_input(model="gpt-4")), timeout=30
                )
        usage = await usage_once_recorded(stub, 1)

    assert caught.value.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.reason == "PROVIDER_REJECTED_REQUEST"
    assert caught.value.metadata["deployment"] == "primary"
    assert [r.path for r in provider_server.requests] == ["/primary/v1/chat/completions"]
    (day,) = usage.daily_usages
    assert (day.request_count, day.failed_request_count) == (1, 1)
    assert (day.prompt_tokens, day.completion_tokens, day.cost_micros) == (0, 0, 0)


async def test_an_exhausted_daily_budget_is_resource_exhausted_with_quota_and_retry_info(
    sqlite_url: str,
) -> None:
    request = llm_service_pb2.CompleteRequest(input=user_input("hi", model="dev", max_tokens=5))
    served: list[llm_service_pb2.CompleteResponse] = []
    async with serving(sqlite_url, daily_tokens=40) as stub:
        with pytest.raises(RateLimitedError) as caught:
            await complete_until_refused(stub, request, served)

    error = caught.value
    assert served
    assert error.grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "BUDGET_EXHAUSTED"
    assert error.metadata == {"tenant": "dev", "limit": "40", "period": "daily"}
    assert [v.subject for v in error.quota_violations] == ["tenant:dev"]
    assert error.retry_after is not None
    assert error.retry_after > timedelta(0)


async def test_a_client_cancelling_a_stream_closes_the_upstream_request(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    openai = wires["openai"]
    first_delta_sent = asyncio.Event()

    async def handle(request: Any, reply: Any) -> None:
        await reply.start(200, openai.stream_content_type)
        await reply.write(openai.preamble + openai.delta("Hel"))
        first_delta_sent.set()
        await reply.wait_for_client_close()

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url)
    async with serving(sqlite_url, routing_file=routing_file) as stub:
        call = stub.StreamComplete(
            llm_service_pb2.StreamCompleteRequest(input=user_input(model="gpt-4")), timeout=60
        )
        first = await call.read()
        assert first.delta.text == "Hel"
        assert first_delta_sent.is_set()
        call.cancel()
        await provider_server.client_closed.wait()
        usage = await usage_once_recorded(stub, 1)

    assert [r.path for r in provider_server.requests] == ["/primary/v1/chat/completions"]
    (day,) = usage.daily_usages
    assert (day.request_count, day.failed_request_count) == (1, 1)


async def test_the_authenticator_decides_the_tenant_and_guards_other_tenants_usage(
    sqlite_url: str,
) -> None:
    async def authenticate(method: str, metadata: Metadata) -> Principal:
        if ("authorization", "Bearer alice-token") not in metadata:
            raise UnauthenticatedError("A bearer token is required.")
        return Principal(tenant="acme", subject="alice")

    bearer = (("authorization", "Bearer alice-token"),)
    async with serving(sqlite_url, authenticate=authenticate) as stub:
        with pytest.raises(UnauthenticatedError):
            async with translate_rpc_errors():
                await stub.Complete(llm_service_pb2.CompleteRequest(input=user_input(model="dev")))
        await stub.Complete(
            llm_service_pb2.CompleteRequest(input=user_input(model="dev")), metadata=bearer
        )
        while True:
            answer = await stub.GetUsage(
                llm_service_pb2.GetUsageRequest(tenant="tenants/acme", **today_range()),
                metadata=bearer,
            )
            if answer.daily_usages:
                break
            await asyncio.sleep(0.1)
        with pytest.raises(PermissionDeniedError) as denied:
            async with translate_rpc_errors():
                await stub.GetUsage(
                    llm_service_pb2.GetUsageRequest(tenant="tenants/other", **today_range()),
                    metadata=bearer,
                )
        with pytest.raises(ValidationError) as bad_range:
            async with translate_rpc_errors():
                await stub.GetUsage(llm_service_pb2.GetUsageRequest(), metadata=bearer)

    (day,) = answer.daily_usages
    assert (day.tenant, day.request_count) == ("tenants/acme", 1)
    assert denied.value.reason == "TENANT_ACCESS_DENIED"
    assert denied.value.metadata == {"tenant": "tenants/other"}
    assert bad_range.value.reason == "INVALID_TIME_RANGE"
    assert {v.field for v in bad_range.value.field_violations} == {"start_time", "end_time"}


async def test_bad_completion_input_and_unknown_models_are_refused(sqlite_url: str) -> None:
    no_role = resources_pb2.CompletionInput(
        model="dev", messages=[resources_pb2.Message(content="hi")]
    )
    async with serving(sqlite_url) as stub:
        with pytest.raises(ValidationError) as invalid:
            async with translate_rpc_errors():
                await stub.Complete(llm_service_pb2.CompleteRequest(input=no_role))
        with pytest.raises(NotFoundError) as unknown:
            async with translate_rpc_errors():
                await stub.Complete(
                    llm_service_pb2.CompleteRequest(
                        input=user_input(model="dev", fallback_models=["nope"])
                    )
                )
        with pytest.raises(ValidationError) as bad_token:
            async with translate_rpc_errors():
                await stub.ListModels(llm_service_pb2.ListModelsRequest(page_token="%%%"))

    assert invalid.value.reason == "INVALID_COMPLETION_INPUT"
    assert [v.field for v in invalid.value.field_violations] == ["input.messages[0].role"]
    assert unknown.value.reason == "MODEL_NOT_FOUND"
    assert unknown.value.metadata["model"] == "nope"
    assert bad_token.value.reason == "INVALID_PAGE_TOKEN"


async def test_list_models_pages_through_the_aliases_in_order(
    sqlite_url: str, tmp_path: Path
) -> None:
    document = {
        "models": {
            name: {"deployments": [{"name": f"dev-{name}", "provider": "dev"}]}
            for name in ("llama2", "gpt-4", "claude")
        }
    }
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    async with serving(sqlite_url, routing_file=routing_file) as stub:
        first = await stub.ListModels(llm_service_pb2.ListModelsRequest(page_size=2))
        second = await stub.ListModels(
            llm_service_pb2.ListModelsRequest(page_size=2, page_token=first.next_page_token)
        )

    assert [m.alias for m in first.models] == ["claude", "gpt-4"]
    assert first.next_page_token
    assert [m.alias for m in second.models] == ["llama2"]
    assert second.next_page_token == ""
    (deployment,) = second.models[0].deployments
    assert (deployment.name, deployment.provider) == ("dev-llama2", resources_pb2.PROVIDER_DEV)


class DeadlineContext:
    """The one thing the servicer asks of a call's context for its deadline."""

    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining


async def test_the_grpc_deadline_becomes_the_routers_deadline_on_the_loop_clock() -> None:
    loop = asyncio.get_running_loop()
    before = loop.time()
    deadline = call_deadline(DeadlineContext(5.0))  # type: ignore[arg-type]
    after = loop.time()

    assert deadline is not None
    assert before + 5.0 <= deadline <= after + 5.0
    # grpc reports a call without a deadline as centuries away.
    assert call_deadline(DeadlineContext(1e10)) is None  # type: ignore[arg-type]
    assert call_deadline(DeadlineContext(None)) is None  # type: ignore[arg-type]


def test_the_ledger_database_defaults_to_llm_db_in_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAINMAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MAINMAST_LLM_DATABASE_URL", raising=False)

    assert LlmSettings().database_target().endswith(f"{tmp_path}/llm.db")
    assert "pw" not in repr(LlmSettings(database_url="postgresql://app:pw@db/llm"))
