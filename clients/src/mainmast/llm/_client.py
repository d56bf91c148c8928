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
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Final, Self

import grpc
import grpc.aio
from google.protobuf import timestamp_pb2

from mainmast._grpc_channel import open_channel
from mainmast.errors import FieldViolation, UnavailableError, ValidationError, translate_rpc_errors

from ._results import Completion, DailyUsage, Message, Model, Role, StreamEvent, TextDelta
from .v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2

LLM_ERROR_DOMAIN: Final = "llm.mainmast.dev"
"""The ErrorInfo `domain` of the llm service's errors (and of this client's own)."""

BearerToken = str | Callable[[], Awaitable[str]]
"""An access token, or an async callable that returns the one to use now."""

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
        if not self.target:
            raise ValueError("target is the llm service's address, HOST:PORT")
        for name in ("call_timeout_seconds", "connect_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} is positive")


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


class LlmClient:
    """Async client of the llm service; see the module docstring.

    ::

        async with LlmClient("llm:50053", bearer_token=token) as llm:
            answer = await llm.complete(
                prompt="Summarize this document", model="gpt-4", fallback_model="llama2"
            )
            async for event in llm.stream(prompt="Tell a story", model="gpt-4"):
                ...  # TextDelta(text), then the Completion with its usage

    `bearer_token` is sent with every call; None sends none (a service in dev mode).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        config: LlmClientConfig | None = None,
        bearer_token: BearerToken | None = None,
    ) -> None:
        config = config or LlmClientConfig()
        if target is not None:
            config = dataclasses.replace(config, target=target)
        self._config = config
        self._bearer_token = bearer_token
        self._channel: grpc.aio.Channel | None = None
        self._stub: llm_service_pb2_grpc.LlmServiceAsyncStub | None = None

    @property
    def config(self) -> LlmClientConfig:
        """The client's settings."""
        return self._config

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the channel and wait up to `connect_timeout_seconds` for the service.

        Call it inside the event loop that will use the client. Raises UnavailableError
        when the service does not answer in time; nothing stays open then.
        """
        if self._channel is not None:
            return
        config = self._config
        channel = open_channel(
            config.target, credentials=config.channel_credentials, options=config.channel_options
        )
        try:
            await asyncio.wait_for(channel.channel_ready(), config.connect_timeout_seconds)
        except TimeoutError:
            await channel.close(None)
            raise UnavailableError(
                f"The llm service at {config.target} did not answer within "
                f"{config.connect_timeout_seconds} s.",
                metadata={"target": config.target},
            ) from None
        except BaseException:
            await channel.close(None)
            raise
        self._channel = channel
        self._stub = llm_service_pb2_grpc.LlmServiceStub(channel)

    async def close(self) -> None:
        """Close the channel (calls in flight are cancelled); the client can connect again."""
        channel, self._channel = self._channel, None
        self._stub = None
        if channel is not None:
            await channel.close(None)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

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
        stub = self._connected_stub()
        metadata = await self._metadata()
        async with translate_rpc_errors():
            response = await stub.Complete(
                request, timeout=timeout or self._config.call_timeout_seconds, metadata=metadata
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
        stub = self._connected_stub()
        metadata = await self._metadata()
        call = stub.StreamComplete(
            request, timeout=timeout or self._config.call_timeout_seconds, metadata=metadata
        )
        try:
            async with translate_rpc_errors():
                async for message in call:
                    if message.HasField("delta"):
                        yield TextDelta(message.delta.text)
                    else:
                        yield Completion.from_proto(message.completion)
        finally:
            # A no-op once the stream has ended; otherwise the service sees the
            # cancellation and closes the provider's request.
            call.cancel()

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
            metadata = await self._metadata()
            async with translate_rpc_errors():
                response = await stub.ListModels(
                    request, timeout=self._config.call_timeout_seconds, metadata=metadata
                )
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
        stub = self._connected_stub()
        metadata = await self._metadata()
        async with translate_rpc_errors():
            response = await stub.GetUsage(
                request, timeout=self._config.call_timeout_seconds, metadata=metadata
            )
        return [DailyUsage.from_proto(usage) for usage in response.daily_usages]

    # -- plumbing ----------------------------------------------------------------------

    def _connected_stub(self) -> llm_service_pb2_grpc.LlmServiceAsyncStub:
        if self._stub is None:
            raise RuntimeError("the LlmClient is not connected: call `await connect()` first")
        return self._stub

    async def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self._bearer_token
        if token is None:
            return ()
        if not isinstance(token, str):
            token = await token()
        return (("authorization", f"Bearer {token}"),)
