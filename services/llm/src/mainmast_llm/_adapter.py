"""What every provider adapter offers, and the HTTP adapters' shared skeleton.

An adapter is one deployment: one provider API at one endpoint, one model, one pooled
`httpx.AsyncClient` given to it (its owner closes it). Subclasses say only how their
provider spells a request and its answers; sending, deadlines, cancellation, errors and
the assembly of a stream into its final response live here and in `_http_call`.

A deadline is absolute, on the running event loop's clock (`deadline_after(seconds)`), so
one deadline can bound a call and every retry and fallback inside it.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Protocol

import httpx

from mainmast.logging import MIN_SECRET_LENGTH, register_secret

from ._completion import (
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    ProviderKind,
    StreamEvent,
    TextDelta,
)
from ._http_call import (
    ProviderCall,
    StreamedBody,
    open_response,
    read_json_object,
)


class ProviderAdapter(Protocol):
    """One deployment's way to complete a request."""

    @property
    def provider(self) -> ProviderKind:
        """The provider API this adapter speaks."""
        ...

    @property
    def model(self) -> str:
        """The provider's model name this adapter asks for."""
        ...

    async def complete(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> CompletionResponse:
        """The whole completion, finished by `deadline` (see `deadline_after`).

        None leaves the call to the client's own timeouts.
        """
        ...

    def stream(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """TextDeltas as they come, then the CompletionResponse; `deadline` bounds it all."""
        ...


@dataclass(slots=True)
class CompletionDraft:
    """A completion being read from a provider's answer, piece by piece.

    Fields stay None until the provider says them, so a stream that never did is
    recognisably incomplete.
    """

    parts: list[str] = field(default_factory=list)
    """The text so far."""
    provider_finish_reason: str | None = None
    """The provider's finish reason, once it sent one."""
    finish_reason: FinishReason | None = None
    """The normalised finish reason, once known."""
    prompt_tokens: int = 0
    """Input tokens, as the provider counted them."""
    completion_tokens: int = 0
    """Output tokens, as the provider counted them."""
    model: str = ""
    """The model the provider says answered; empty for the one asked for."""

    def finished(
        self, provider: ProviderKind, requested_model: str, started: float
    ) -> CompletionResponse:
        """The response this draft became, its latency counted from `started` (monotonic)."""
        return CompletionResponse(
            text="".join(self.parts),
            finish_reason=self.finish_reason or FinishReason.OTHER,
            provider_finish_reason=self.provider_finish_reason or "",
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            provider=provider,
            model=self.model or requested_model,
            latency=timedelta(seconds=time.monotonic() - started),
        )


@dataclass(frozen=True, slots=True)
class HttpRequestSpec:
    """One provider request as an adapter spells it."""

    url: str
    """Where to POST."""
    headers: Mapping[str, str]
    """Headers, credentials included."""
    body: dict[str, Any]
    """The JSON body."""


class HttpAdapter(abc.ABC):
    """The skeleton of an adapter over a provider's HTTP API."""

    provider_kind: ClassVar[ProviderKind]

    def __init__(
        self, client: httpx.AsyncClient, *, model: str, secrets: tuple[str, ...] = ()
    ) -> None:
        if not model:
            raise ValueError("model must not be empty")
        for secret in secrets:
            # Masked in every log line from now on, wherever it appears. A value too short
            # to mask without masking ordinary words is a placeholder (vLLM's "EMPTY"),
            # not a credential.
            if len(secret) >= MIN_SECRET_LENGTH:
                register_secret(secret)
        self._call = ProviderCall(client=client, provider=self.provider_kind, secrets=secrets)
        self._model = model

    @property
    def provider(self) -> ProviderKind:
        """The provider API this adapter speaks."""
        return self.provider_kind

    @property
    def model(self) -> str:
        """The provider's model name this adapter asks for."""
        return self._model

    def __repr__(self) -> str:
        # Never the credentials: an adapter may end up in a log line or a traceback.
        return f"{type(self).__name__}(model={self._model!r})"

    async def complete(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> CompletionResponse:
        """The whole completion, finished by `deadline` (None: the client's own timeouts)."""
        started = time.monotonic()
        spec = await self._request_spec(request, stream=False)
        async with open_response(
            self._call, spec.url, headers=spec.headers, json_body=spec.body, deadline=deadline
        ) as response:
            payload = await read_json_object(self._call, response, deadline)
        draft = self._read_completion(request, payload)
        return draft.finished(self.provider_kind, self._model, started)

    async def stream(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """TextDeltas as they come, then the CompletionResponse; `deadline` bounds it all.

        A stream that ends before the provider said it was complete, or that carries an
        event this adapter cannot read, raises a malformed-response error.
        """
        started = time.monotonic()
        spec = await self._request_spec(request, stream=True)
        draft = CompletionDraft()
        async with (
            open_response(
                self._call, spec.url, headers=spec.headers, json_body=spec.body, deadline=deadline
            ) as response,
        ):
            body = StreamedBody(self._call, response, deadline)
            async with aclosing(self._read_stream(request, body, draft)) as pieces:
                async for piece in pieces:
                    if piece:
                        yield TextDelta(piece)
            await body.drain()
        yield draft.finished(self.provider_kind, self._model, started)

    @abc.abstractmethod
    async def _request_spec(self, request: CompletionRequest, *, stream: bool) -> HttpRequestSpec:
        """The URL, headers and body of `request`."""

    @abc.abstractmethod
    def _read_completion(
        self, request: CompletionRequest, payload: dict[str, Any]
    ) -> CompletionDraft:
        """The completion in a non-streaming answer."""

    @abc.abstractmethod
    def _read_stream(
        self,
        request: CompletionRequest,
        body: StreamedBody,
        draft: CompletionDraft,
    ) -> AsyncGenerator[str, None]:
        """The text pieces of a streaming answer, filling `draft` as it goes.

        Returns normally only when the provider said the answer is complete.
        """
