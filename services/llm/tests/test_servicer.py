"""LlmService over a real server: ServiceServer on 127.0.0.1, a SQLite ledger, the dev
provider and the scripted provider server of conftest speaking OpenAI's wire format, and
callers authenticated by tokens of a real auth service (or the dev principal)."""

from __future__ import annotations

import asyncio
import socket
import uuid
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
from sqlalchemy import select

from mainmast.auth import DEV_PRINCIPAL
from mainmast.db import DatabasePool
from mainmast.errors import (
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
    translate_rpc_errors,
)
from mainmast.llm.v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2
from mainmast_llm._completion import ChatMessage, CompletionRequest, Role, TextDelta
from mainmast_llm._dev import DEV_NOTICE, DevAdapter
from mainmast_llm._ledger_schema import usage_records
from mainmast_llm._router import Router
from mainmast_llm._routing import default_routing
from mainmast_llm._routing_results import AttemptOutcome, attempts_of
from mainmast_llm._servicer import _close_routed_stream, call_deadline
from mainmast_llm.settings import LlmSettings
from mainmast_llm.testing import running_llm_service

OPENAI_KEY = "sk-servicer-test-5b1e9d0c7a3f"
Outcome = resources_pb2.Attempt.Outcome


@asynccontextmanager
async def serving(
    database_url: str, **options: Any
) -> AsyncIterator[llm_service_pb2_grpc.LlmServiceStub]:
    """An LlmService (see `running_llm_service`; provider key OPENAI_KEY in its environment)
    and a stub on a channel to it, both closed after."""
    async with (
        running_llm_service(database_url, environ={"OPENAI_KEY": OPENAI_KEY}, **options) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        yield llm_service_pb2_grpc.LlmServiceStub(channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def ledger_rows(database_url: str, count: int) -> list[Any]:
    """The ledger's rows, oldest first, once it holds at least `count` (it writes in batches)."""
    pool = DatabasePool(database_url)
    try:
        while True:
            async with pool.connection() as connection:
                rows = (
                    await connection.execute(
                        select(usage_records).order_by(usage_records.c.occurred_at)
                    )
                ).all()
            if len(rows) >= count:
                return list(rows)
            await asyncio.sleep(0.1)
    finally:
        await pool.close()


def user_input(text: str = "Say hello", **fields: Any) -> resources_pb2.CompletionInput:
    return resources_pb2.CompletionInput(
        messages=[resources_pb2.Message(role=resources_pb2.ROLE_USER, content=text)], **fields
    )


def write_routing(path: Path, url: str, key: dict[str, str] | None = None) -> Path:
    """Alias `gpt-4`: deployment `primary`, then `secondary`, each tried once, both with
    `key` (by default the environment variable OPENAI_KEY)."""
    deployments = [
        {
            "name": name,
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": f"{url}/{name}/v1",
            "key": key or {"env": "OPENAI_KEY"},
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
    stub: llm_service_pb2_grpc.LlmServiceStub,
    requests: int,
    metadata: tuple[tuple[str, str], ...] = (),
    **fields: Any,
) -> llm_service_pb2.GetUsageResponse:
    """GetUsage, asked again until the ledger's batches hold `requests` calls."""
    while True:
        answer = await stub.GetUsage(
            llm_service_pb2.GetUsageRequest(**today_range(), **fields), metadata=metadata
        )
        if sum(usage.request_count for usage in answer.daily_usages) >= requests:
            return answer
        await asyncio.sleep(0.1)


async def complete_until_refused(
    stub: llm_service_pb2_grpc.LlmServiceStub,
    request: llm_service_pb2.CompleteRequest,
    served: list[llm_service_pb2.CompleteResponse],
    metadata: tuple[tuple[str, str], ...] = (),
) -> None:
    """Complete `request` again and again (at most 40 times) until the service refuses."""
    async with translate_rpc_errors():
        # Each call reserves its estimate (12 tokens) and settles what it used, so a few
        # calls fit before the budget refuses one.
        for _ in range(40):
            served.append(await stub.Complete(request, timeout=30, metadata=metadata))


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
    assert (day.tenant, day.model_alias) == (DEV_PRINCIPAL.tenant, "gpt-4")
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
    (row,) = await ledger_rows(sqlite_url, 1)
    assert (row.deployment, row.provider, row.outcome) == ("primary", "openai", "rejected")


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
    *succeeded, refused = await ledger_rows(sqlite_url, len(served) + 1)
    assert {row.outcome for row in succeeded} == {"succeeded"}
    assert (refused.tenant, refused.model_alias, refused.deployment) == ("dev", "dev", "")
    assert (refused.outcome, refused.prompt_tokens, refused.completion_tokens) == (
        "quota_exceeded",
        0,
        0,
    )


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
    (row,) = await ledger_rows(sqlite_url, 1)
    assert (row.deployment, row.provider, row.outcome) == ("primary", "openai", "cancelled")


async def test_a_client_cancelling_a_completion_closes_the_upstream_request_and_records_it(
    sqlite_url: str, tmp_path: Path, provider_server: Any
) -> None:
    request_arrived = asyncio.Event()

    async def handle(request: Any, reply: Any) -> None:
        request_arrived.set()
        await reply.wait_for_client_close()

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url)
    async with serving(sqlite_url, routing_file=routing_file) as stub:
        call = stub.Complete(
            llm_service_pb2.CompleteRequest(input=user_input(model="gpt-4")), timeout=60
        )
        await request_arrived.wait()
        call.cancel()
        await provider_server.client_closed.wait()
        (row,) = await ledger_rows(sqlite_url, 1)

    assert [r.path for r in provider_server.requests] == ["/primary/v1/chat/completions"]
    assert (row.model_alias, row.deployment, row.outcome) == ("gpt-4", "primary", "cancelled")
    assert (row.prompt_tokens, row.completion_tokens, row.cost_micros) == (0, 0, 0)


async def read_stream(call: Any) -> list[Any]:
    """Every message of a server stream."""
    return [message async for message in call]


async def refusals_of_every_method(
    stub: llm_service_pb2_grpc.LlmServiceStub, metadata: tuple[tuple[str, str], ...]
) -> list[str]:
    """The reason of the UnauthenticatedError each method answers a call with `metadata`."""
    complete = llm_service_pb2.CompleteRequest(input=user_input(model="gpt-4"))
    stream = llm_service_pb2.StreamCompleteRequest(input=user_input(model="gpt-4"))
    methods = (
        lambda: stub.Complete(complete, metadata=metadata),
        lambda: read_stream(stub.StreamComplete(stream, metadata=metadata)),
        lambda: stub.ListModels(llm_service_pb2.ListModelsRequest(), metadata=metadata),
        lambda: stub.GetUsage(llm_service_pb2.GetUsageRequest(**today_range()), metadata=metadata),
    )
    reasons = []
    for method in methods:
        with pytest.raises(UnauthenticatedError) as refused:
            async with translate_rpc_errors():
                await method()
        reasons.append(refused.value.reason)
    return reasons


async def test_a_call_without_a_valid_token_is_unauthenticated_and_reaches_nothing(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any, auth_server: Any
) -> None:
    async def handle(request: Any, reply: Any) -> None:
        await reply.send(200, wires["openai"].success_body)

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url)
    reasons = []
    async with serving(
        sqlite_url, auth_target=auth_server.target, routing_file=routing_file
    ) as stub:
        for metadata in ((), bearer("not-a-jwt")):
            reasons += await refusals_of_every_method(stub, metadata)

    assert reasons == ["CREDENTIALS_MISSING"] * 4 + ["TOKEN_MALFORMED"] * 4
    assert provider_server.requests == []
    # The service has stopped, so its ledger has written everything it was given.
    assert await ledger_rows(sqlite_url, 0) == []


async def test_a_caller_without_llm_complete_is_denied_before_any_provider_or_ledger(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any, auth_server: Any
) -> None:
    async def handle(request: Any, reply: Any) -> None:
        await reply.send(200, wires["openai"].success_body)

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url)
    member = bearer(await auth_server.token("tenants/acme", "mia"))  # a viewer's *:read
    async with serving(
        sqlite_url, auth_target=auth_server.target, routing_file=routing_file
    ) as stub:
        with pytest.raises(PermissionDeniedError) as denied:
            async with translate_rpc_errors():
                await stub.Complete(
                    llm_service_pb2.CompleteRequest(input=user_input(model="gpt-4")),
                    metadata=member,
                )
        with pytest.raises(PermissionDeniedError) as stream_denied:
            async with translate_rpc_errors():
                await read_stream(
                    stub.StreamComplete(
                        llm_service_pb2.StreamCompleteRequest(input=user_input(model="gpt-4")),
                        metadata=member,
                    )
                )
        models = await stub.ListModels(llm_service_pb2.ListModelsRequest(), metadata=member)

    assert denied.value.reason == stream_denied.value.reason == "PERMISSION_MISSING"
    assert denied.value.metadata == {"permission": "llm:complete"}
    assert [model.alias for model in models.models] == ["gpt-4"]  # llm:read, from *:read
    assert provider_server.requests == []
    assert await ledger_rows(sqlite_url, 0) == []


async def test_an_owner_completes_and_the_ledger_names_the_tenant_and_subject_of_the_token(
    sqlite_url: str, auth_server: Any
) -> None:
    owner = bearer(await auth_server.token("tenants/acme", "olga", role="owner"))
    async with serving(sqlite_url, auth_target=auth_server.target) as stub:
        answer = await stub.Complete(
            llm_service_pb2.CompleteRequest(input=user_input(model="dev")),
            metadata=owner,
            timeout=30,
        )
        pieces = [
            piece
            async for piece in stub.StreamComplete(
                llm_service_pb2.StreamCompleteRequest(input=user_input(model="dev")),
                metadata=owner,
                timeout=30,
            )
        ]
        usage = await usage_once_recorded(stub, 2, owner)

    assert answer.completion.text == f"{DEV_NOTICE} Say hello"
    assert pieces[-1].completion.text == answer.completion.text
    (day,) = usage.daily_usages
    assert (day.tenant, day.model_alias, day.request_count) == ("tenants/acme", "dev", 2)
    rows = await ledger_rows(sqlite_url, 2)
    assert {(r.tenant, r.subject, r.outcome) for r in rows} == {
        ("acme", "tenants/acme/users/olga", "succeeded")
    }


async def test_a_caller_without_read_permissions_may_not_list_models_or_read_usage(
    sqlite_url: str, auth_server: Any
) -> None:
    # A role of no grants: the caller holds nothing at all.
    nobody = bearer(await auth_server.token("tenants/acme", "nemo", role="guest"))
    async with serving(sqlite_url, auth_target=auth_server.target) as stub:
        with pytest.raises(PermissionDeniedError) as models:
            async with translate_rpc_errors():
                await stub.ListModels(llm_service_pb2.ListModelsRequest(), metadata=nobody)
        with pytest.raises(PermissionDeniedError) as usage:
            async with translate_rpc_errors():
                await stub.GetUsage(
                    llm_service_pb2.GetUsageRequest(**today_range()), metadata=nobody
                )

    assert models.value.metadata == {"permission": "llm:read"}
    assert usage.value.metadata == {"permission": "llm-usage:read"}


async def test_quotas_count_per_tenant_of_the_token_and_a_refusal_is_recorded(
    sqlite_url: str, auth_server: Any
) -> None:
    acme = bearer(await auth_server.token("tenants/acme", "olga", role="owner"))
    globex = bearer(await auth_server.token("tenants/globex", "gus", role="owner"))
    request = llm_service_pb2.CompleteRequest(input=user_input("hi", model="dev", max_tokens=5))
    served: list[llm_service_pb2.CompleteResponse] = []
    async with serving(sqlite_url, auth_target=auth_server.target, daily_tokens=40) as stub:
        with pytest.raises(RateLimitedError) as caught:
            await complete_until_refused(stub, request, served, acme)
        # acme's budget is spent; globex's is its own.
        other = await stub.Complete(request, metadata=globex, timeout=30)

    assert served
    assert other.completion.text
    assert caught.value.reason == "BUDGET_EXHAUSTED"
    assert caught.value.metadata["tenant"] == "acme"
    rows = await ledger_rows(sqlite_url, len(served) + 2)
    assert [(r.tenant, r.outcome) for r in rows] == [
        *[("acme", "succeeded")] * len(served),
        ("acme", "quota_exceeded"),
        ("globex", "succeeded"),
    ]


async def test_usage_of_other_tenants_needs_platform_admin(
    sqlite_url: str, auth_server: Any
) -> None:
    acme = bearer(await auth_server.token("tenants/acme", "olga", role="owner"))
    globex = bearer(await auth_server.token("tenants/globex", "gus", role="owner"))
    admin = bearer(await auth_server.token("tenants/ops", "ada", platform_admin=True))
    member = bearer(await auth_server.token("tenants/acme", "mia"))
    complete = llm_service_pb2.CompleteRequest(input=user_input(model="dev"))
    async with serving(sqlite_url, auth_target=auth_server.target) as stub:
        await stub.Complete(complete, metadata=acme, timeout=30)
        await stub.Complete(complete, metadata=globex, timeout=30)
        own = await usage_once_recorded(stub, 1, member)  # acme's, read by a member
        everyone = await usage_once_recorded(stub, 2, admin, tenant="tenants/-")
        just_globex = await stub.GetUsage(
            llm_service_pb2.GetUsageRequest(tenant="tenants/globex", **today_range()),
            metadata=admin,
        )
        refused = []
        for tenant in ("tenants/globex", "tenants/-"):
            with pytest.raises(PermissionDeniedError) as denied:
                async with translate_rpc_errors():
                    await stub.GetUsage(
                        llm_service_pb2.GetUsageRequest(tenant=tenant, **today_range()),
                        metadata=acme,
                    )
            refused.append((denied.value.reason, denied.value.metadata))
        with pytest.raises(ValidationError) as bad_range:
            async with translate_rpc_errors():
                await stub.GetUsage(llm_service_pb2.GetUsageRequest(), metadata=acme)

    assert [day.tenant for day in own.daily_usages] == ["tenants/acme"]
    assert [day.tenant for day in everyone.daily_usages] == ["tenants/acme", "tenants/globex"]
    assert [day.tenant for day in just_globex.daily_usages] == ["tenants/globex"]
    assert refused == [
        ("TENANT_ACCESS_DENIED", {"tenant": "tenants/globex"}),
        ("TENANT_ACCESS_DENIED", {"tenant": "tenants/-"}),
    ]
    assert bad_range.value.reason == "INVALID_TIME_RANGE"
    assert {v.field for v in bad_range.value.field_violations} == {"start_time", "end_time"}


async def test_the_service_starts_without_the_auth_service_and_refuses_calls_unavailable(
    sqlite_url: str,
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    async with serving(
        sqlite_url, auth_target=f"127.0.0.1:{closed_port}", auth_wait_seconds=0.05
    ) as stub:
        with pytest.raises(UnavailableError) as caught:
            async with translate_rpc_errors():
                await stub.Complete(
                    llm_service_pb2.CompleteRequest(input=user_input(model="dev")),
                    metadata=bearer("any"),
                )

    assert caught.value.metadata == {"auth_target": f"127.0.0.1:{closed_port}"}
    assert await ledger_rows(sqlite_url, 0) == []


async def test_a_request_id_is_recorded_with_the_call(sqlite_url: str) -> None:
    request_id = str(uuid.uuid4())
    async with serving(sqlite_url) as stub:
        await stub.Complete(
            llm_service_pb2.CompleteRequest(input=user_input(model="dev"), request_id=request_id),
            timeout=30,
        )
        with pytest.raises(ValidationError) as invalid:
            async with translate_rpc_errors():
                await stub.Complete(
                    llm_service_pb2.CompleteRequest(
                        input=user_input(model="dev"), request_id="not-a-uuid"
                    )
                )
        rows = await ledger_rows(sqlite_url, 2)

    assert invalid.value.field_violations[0].field == "request_id"
    assert [(r.request_id, r.outcome) for r in rows] == [
        (request_id, "succeeded"),
        (None, "rejected"),
    ]


class ConfigSecrets:
    """The config service as the llm service reads it: secrets by name."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    async def get_secret(self, name: str) -> str:
        if name not in self.values:
            raise NotFoundError("Secret", name)
        return self.values[name]


async def test_a_key_named_as_a_secret_comes_from_the_config_service_the_service_is_given(
    sqlite_url: str, tmp_path: Path, provider_server: Any, wires: Any
) -> None:
    config_key = "sk-from-the-config-service-81f2"

    async def handle(request: Any, reply: Any) -> None:
        await reply.send(200, wires["openai"].success_body)

    provider_server.handler = handle
    routing_file = write_routing(tmp_path, provider_server.url, {"secret": "openai-key"})
    secrets = ConfigSecrets({"openai-key": config_key})
    async with serving(sqlite_url, routing_file=routing_file, secrets=secrets) as stub:
        await stub.Complete(
            llm_service_pb2.CompleteRequest(input=user_input(model="gpt-4")), timeout=30
        )
    with pytest.raises(FailedPreconditionError) as refused:
        async with serving(sqlite_url, routing_file=routing_file):
            pass

    (request,) = provider_server.requests
    assert request.headers["authorization"] == f"Bearer {config_key}"
    assert refused.value.reason == "PROVIDER_KEY_MISSING"
    assert "no config service is configured" in refused.value.message


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
    # Both were calls, refused before routing: recorded without a deployment.
    rows = await ledger_rows(sqlite_url, 2)
    assert [(r.model_alias, r.deployment, r.provider, r.model, r.outcome) for r in rows] == [
        ("dev", "", "", "", "rejected"),
        ("dev", "", "", "", "rejected"),
    ]


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


async def test_closing_a_routed_stream_hands_its_attempts_to_what_ended_the_call() -> None:
    router = Router(default_routing(), {"dev": DevAdapter()})
    request = CompletionRequest(messages=(ChatMessage(Role.USER, "Say hello"),))
    waiting, finished = router.stream(request, model="dev"), router.stream(request, model="dev")
    assert isinstance(await anext(waiting), TextDelta)  # the router now waits at its yield
    assert isinstance(await anext(finished), TextDelta)
    closing = GeneratorExit()

    await _close_routed_stream(waiting, closing)  # type: ignore[arg-type]
    await _close_routed_stream(finished, None)  # type: ignore[arg-type]

    assert [(a.deployment, a.outcome) for a in attempts_of(closing)] == [
        ("dev", AttemptOutcome.CANCELLED)
    ]
    assert waiting.ag_frame is None  # type: ignore[attr-defined]
    assert finished.ag_frame is None  # type: ignore[attr-defined]
