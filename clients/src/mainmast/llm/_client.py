"""`LlmClient`: the typed async face of `mainmast.llm.v1.LlmService`.

One grpc.aio channel per client, made by `connect()` (or `async with`) inside the event
loop that uses it; in a FastAPI application, in the lifespan. Every call carries the
client's bearer token (a string, or an async callable asked before each call, so a
token can be refreshed) as `authorization: Bearer ...`. Every failure arrives as a
`mainmast.errors` class with the service's reason: RateLimitedError with `retry_after`
and `quota_violations` for a spent budget, ValidationError with field violations,
UnavailableError when every provider failed, and so on. Results are frozen dataclasses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import grpc
import grpc.aio
from google.protobuf import timestamp_pb2

from mainmast._grpc_client import BearerToken, GrpcClient, check_client_config
from mainmast.errors import FieldViolation, UnavailableError, ValidationError

from ._results import Completion, DailyUsage, Message, Model, Role, StreamEvent, TextDelta
from .v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2

LLM_ERROR_DOMAIN: Final = "llm.mainmast.dev"
"""The ErrorInfo `domain` of the llm service's errors (and of this client's own)."""

_LIST_PAGE_SIZE: Final = 1000
_ROLES: Final = {Role.USER: resources_pb2.ROLE_USER, Role.ASSISTANT: resources_pb2.ROLE_ASSISTANT}


@dataclass(frozen=True, slots=True)
class LlmClientConfig:
    """How an LlmClient reaches the llm service. Frozen: share one."""

    target: str = "127.0.0.1:50053"
    """The llm service's gRPC address, HOST:PORT (any grpc target string)."""
    call_timeout_seconds: float = 120.0
    """Deadline of a completion (and of a whole stream) when the call gives no `timeout`;
    the service carries it to the provider."""
    connect_timeout_seconds: float = 10.0
    """How long `connect()` waits for the service to answer."""
    channel_credentials: grpc.ChannelCredentials | None = field(default=None, compare=False)
    """TLS credentials for the channel; None for a plaintext channel (loopback, mesh)."""
    channel_options: tuple[tuple[str, str | int], ...] = ()
    """Extra grpc channel options, e.g. `(("grpc.keepalive_time_ms", 30000),)`."""

    def __post_init__(self) -> None:
        check_client_config(self, "llm", "call_timeout_seconds", "connect_timeout_seconds")


def _invalid(violations: list[FieldViolation]) -> ValidationError:
    return ValidationError(
        "The completion input is invalid: "
        + "; ".join(f"{v.field}: {v.description}" for v in violations),
        field_violations=violations,
        reason="INVALID_COMPLETION_INPUT",
        domain=LLM_ERROR_DOMAIN,
    )


def _message(entry: Message | Mapping[str, str], index: int) -> resources_pb2.Message:
    role: str
    if isinstance(entry, Message):
        role, content = entry.role, entry.content
    else:
        role, content = entry.get("role", ""), entry.get("content", "")
    if role not in _ROLES:
        violation = FieldViolation(f"messages[{index}].role", "must be 'user' or 'assistant'")
        raise _invalid([violation])
    return resources_pb2.Message(role=_ROLES[Role(role)], content=content)


def completion_input(
    prompt: str | None,
    *,
    messages: Sequence[Message | Mapping[str, str]] | None,
    model: str,
    system: str,
    fallback_model: str | None,
    fallback_models: Sequence[str],
    temperature: float | None,
    max_tokens: int | None,
    stop: str | Sequence[str],
    json_mode: bool,
) -> resources_pb2.CompletionInput:
    """The contract's CompletionInput of `LlmClient.complete`'s arguments; ValidationError
    (INVALID_COMPLETION_INPUT) when they contradict each other."""
    violations = []
    if (prompt is None) == (messages is None):
        violations.append(FieldViolation("prompt", "give exactly one of prompt and messages"))
    if fallback_model is not None and fallback_models:
        violations.append(
            FieldViolation("fallback_model", "give fallback_model or fallback_models, not both")
        )
    if violations:
        raise _invalid(violations)
    conversation = (
        [resources_pb2.Message(role=resources_pb2.ROLE_USER, content=prompt or "")]
        if messages is None
        else [_message(entry, index) for index, entry in enumerate(messages)]
    )
    fallbacks = [fallback_model] if fallback_model is not None else list(fallback_models)
    return resources_pb2.CompletionInput(
        model=model,
        fallback_models=fallbacks,
        system=system,
        messages=conversation,
        temperature=temperature,
        max_tokens=max_tokens,
        stop_sequences=[stop] if isinstance(stop, str) else list(stop),
        response_format=(
            resources_pb2.RESPONSE_FORMAT_JSON_OBJECT
            if json_mode
            else resources_pb2.RESPONSE_FORMAT_TEXT
        ),
    )


def _timestamp(value: datetime, name: str) -> timestamp_pb2.Timestamp:
    if value.tzinfo is None:
        raise ValidationError(
            f"{name} must be a time-zone aware datetime.",
            field_violations=[FieldViolation(name, "must be a time-zone aware time")],
            reason="INVALID_TIME_RANGE",
            domain=LLM_ERROR_DOMAIN,
        )
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


# The async stub type exists only in the generated .pyi, hence the string.
class LlmClient(GrpcClient[LlmClientConfig, "llm_service_pb2_grpc.LlmServiceAsyncStub"]):
    """Async client of the llm service; see the module docstring.

    ::

        async with LlmClient("llm:50053", bearer_token=token) as llm:
            answer = await llm.complete(
                prompt="Summarize this document", model="gpt-4", fallback_model="llama2"
            )
            async for event in llm.stream(prompt="Tell a story", model="gpt-4"):
                ...  # TextDelta(text), then the Completion with its usage

    `bearer_token` is sent with every call; None sends none (a service in dev mode).
    `connect()` waits up to `connect_timeout_seconds` for the service: UnavailableError
    when it does not answer.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        config: LlmClientConfig | None = None,
        bearer_token: BearerToken | None = None,
    ) -> None:
        super().__init__(
            config or LlmClientConfig(),
            target,
            new_stub=llm_service_pb2_grpc.LlmServiceStub,
            bearer_token=bearer_token,
        )

    # -- completions -------------------------------------------------------------------

    async def complete(
        self,
        prompt: str | None = None,
        *,
        model: str,
        messages: Sequence[Message | Mapping[str, str]] | None = None,
        system: str = "",
        fallback_model: str | None = None,
        fallback_models: Sequence[str] = (),
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: str | Sequence[str] = (),
        json_mode: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 -- the gRPC deadline, sent to the service
        request_id: str = "",
    ) -> Completion:
        """A completion of `prompt` (one user message) or of `messages`, by the model alias
        `model`, falling back to `fallback_model` (or each of `fallback_models`) when every
        deployment of `model` fails with a retryable failure.

        `messages` are `Message`s or `{"role": "user" | "assistant", "content": ...}`;
        `system` is the system instruction. `temperature` (0 to 2), `max_tokens` and `stop`
        (at most 4 sequences) go to the provider; `json_mode` asks for one JSON object.
        `timeout` (seconds; `call_timeout_seconds` when None) bounds the whole call, down
        to the provider. `request_id`, a UUID, makes a retried call count once.
        """
        request = llm_service_pb2.CompleteRequest(
            input=completion_input(
                prompt,
                messages=messages,
                model=model,
                system=system,
                fallback_model=fallback_model,
                fallback_models=fallback_models,
                temperature=temperature,
                max_tokens=max_tokens,
                stop=stop,
                json_mode=json_mode,
            ),
            request_id=request_id,
        )
        response = await self._call(
            self._connected_stub().Complete, request, deadline_seconds=timeout
        )
        return Completion.from_proto(response.completion)

    async def stream(
        self,
        prompt: str | None = None,
        *,
        model: str,
        messages: Sequence[Message | Mapping[str, str]] | None = None,
        system: str = "",
        fallback_model: str | None = None,
        fallback_models: Sequence[str] = (),
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: str | Sequence[str] = (),
        json_mode: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 -- the gRPC deadline, sent to the service
        request_id: str = "",
    ) -> AsyncIterator[StreamEvent]:
        """The completion `complete` would give, as it is generated: `TextDelta`s, then the
        `Completion` (its text is the deltas joined; it has the usage and attempts).

        Falls over to another deployment only before the first delta; a failure after it
        raises UnavailableError STREAM_INTERRUPTED. Stopping the iteration early (`break`,
        or closing the iterator) cancels the call, and the service closes the upstream
        request. Arguments as for `complete`.
        """
        request = llm_service_pb2.StreamCompleteRequest(
            input=completion_input(
                prompt,
                messages=messages,
                model=model,
                system=system,
                fallback_model=fallback_model,
                fallback_models=fallback_models,
                temperature=temperature,
                max_tokens=max_tokens,
                stop=stop,
                json_mode=json_mode,
            ),
            request_id=request_id,
        )
        # Leaving early cancels the call, and the service closes the provider's request.
        async with self._stream(
            self._connected_stub().StreamComplete,
            request,
            deadline_seconds=timeout or self._config.call_timeout_seconds,
        ) as responses:
            async for message in responses:
                if message.HasField("delta"):
                    yield TextDelta(message.delta.text)
                else:
                    yield Completion.from_proto(message.completion)

    # -- models and usage --------------------------------------------------------------

    async def list_models(self) -> list[Model]:
        """Every model alias the service routes, ordered by alias, with its deployments."""
        stub = self._connected_stub()
        models: list[Model] = []
        page_token = ""
        while True:
            request = llm_service_pb2.ListModelsRequest(
                page_size=_LIST_PAGE_SIZE, page_token=page_token
            )
            response = await self._call(stub.ListModels, request)
            models += [Model.from_proto(model) for model in response.models]
            page_token = response.next_page_token
            if not page_token:
                return models

    async def get_usage(
        self, *, start: datetime, end: datetime, tenant: str = "", model_alias: str = ""
    ) -> list[DailyUsage]:
        """The usage ledger by tenant, model alias and UTC day over [start, end), the times
        rounded out to whole UTC days (at most 366).

        `tenant` is the caller's own when empty; another (`tenants/globex`) or every tenant
        (`tenants/-`) needs platform admin. `model_alias` narrows to one alias.
        """
        request = llm_service_pb2.GetUsageRequest(
            tenant=tenant,
            start_time=_timestamp(start, "start_time"),
            end_time=_timestamp(end, "end_time"),
            model_alias=model_alias,
        )
        response = await self._call(self._connected_stub().GetUsage, request)
        return [DailyUsage.from_proto(usage) for usage in response.daily_usages]

    # -- plumbing ----------------------------------------------------------------------

    async def _ready(self, channel: grpc.aio.Channel) -> None:
        """Wait up to `connect_timeout_seconds` for the service to answer."""
        config = self._config
        try:
            await asyncio.wait_for(channel.channel_ready(), config.connect_timeout_seconds)
        except TimeoutError:
            raise UnavailableError(
                f"The llm service at {config.target} did not answer within "
                f"{config.connect_timeout_seconds} s.",
                metadata={"target": config.target},
            ) from None
