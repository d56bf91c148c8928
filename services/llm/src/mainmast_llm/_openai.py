"""OpenAI chat completions, for OpenAI and any OpenAI-compatible server, and Azure OpenAI.

Streams are server-sent events of `chat.completion.chunk` objects ending in
`data: [DONE]`; usage arrives in a last chunk because the request asks for it
(`stream_options.include_usage`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final

import httpx

from ._adapter import CompletionDraft, HttpAdapter, HttpRequestSpec
from ._completion import CompletionRequest, FinishReason, ProviderKind
from ._http_call import StreamedBody, parse_json_object
from ._json_fields import count, text_or_empty
from ._provider_errors import error_in_stream, malformed_response_error

OPENAI_BASE_URL: Final = "https://api.openai.com/v1"
"""Where OpenAI's API lives; other OpenAI-compatible servers have their own."""

AZURE_API_VERSION: Final = "2024-10-21"
"""The Azure OpenAI API version asked for unless another is given (GA, with stream usage)."""

_END_OF_STREAM: Final = "[DONE]"

_FINISH_REASONS: Final = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}

TokenProvider = Callable[[], Awaitable[str]]
"""Returns a bearer token (an Entra ID access token) for each call; it caches as it likes."""


def chat_completions_body(
    request: CompletionRequest, *, model: str | None, stream: bool
) -> dict[str, Any]:
    """The chat completions body of `request` (no `model` for Azure, whose URL names it)."""
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": m.role.value, "content": m.content} for m in request.messages]
    body: dict[str, Any] = {"messages": messages}
    if model is not None:
        body["model"] = model
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    if request.json_mode:
        body["response_format"] = {"type": "json_object"}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


class OpenAIAdapter(HttpAdapter):
    """OpenAI chat completions at `base_url` (any OpenAI-compatible server)."""

    provider_kind = ProviderKind.OPENAI

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str = OPENAI_BASE_URL,
    ) -> None:
        super().__init__(client, model=model, secrets=(api_key,) if api_key else ())
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/chat/completions"

    async def _request_spec(self, request: CompletionRequest, *, stream: bool) -> HttpRequestSpec:
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        body = chat_completions_body(request, model=self.model, stream=stream)
        return HttpRequestSpec(url=self._url, headers=headers, body=body)

    def _read_completion(
        self, request: CompletionRequest, payload: dict[str, Any]
    ) -> CompletionDraft:
        draft = CompletionDraft(model=text_or_empty(payload.get("model")))
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise malformed_response_error(self.provider, "the answer has no choices")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str | None):
            raise malformed_response_error(self.provider, "the message content is not text")
        draft.parts.append(content or "")
        self._read_finish(draft, choices[0])
        self._read_usage(draft, payload.get("usage"))
        return draft

    async def _read_stream(
        self,
        request: CompletionRequest,
        body: StreamedBody,
        draft: CompletionDraft,
    ) -> AsyncGenerator[str, None]:
        async for event in body.events():
            if event.data.strip() == _END_OF_STREAM:
                return
            chunk = parse_json_object(self._call, event.data, status=body.status)
            if "error" in chunk:
                raise error_in_stream(
                    self.provider,
                    500,
                    _error_message(chunk["error"]),
                    secrets=self._call.secrets,
                )
            draft.model = text_or_empty(chunk.get("model")) or draft.model
            self._read_usage(draft, chunk.get("usage"))
            choices = chunk.get("choices")
            if not isinstance(choices, list):
                raise malformed_response_error(self.provider, "a chunk has no choices")
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue  # only one choice is ever asked for
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if not isinstance(content, str | None):
                    raise malformed_response_error(self.provider, "a delta is not text")
                self._read_finish(draft, choice)
                if content:
                    draft.parts.append(content)
                    yield content
        raise malformed_response_error(self.provider, "the stream ended before [DONE]")

    def _read_finish(self, draft: CompletionDraft, choice: dict[str, Any]) -> None:
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            draft.provider_finish_reason = reason
            draft.finish_reason = _FINISH_REASONS.get(reason, FinishReason.OTHER)

    @staticmethod
    def _read_usage(draft: CompletionDraft, usage: object) -> None:
        if isinstance(usage, dict):
            draft.prompt_tokens = count(usage.get("prompt_tokens"))
            draft.completion_tokens = count(usage.get("completion_tokens"))


def _error_message(error: object) -> str:
    if isinstance(error, dict):
        return text_or_empty(error.get("message"))
    return text_or_empty(error)


class AzureOpenAIAdapter(OpenAIAdapter):
    """An Azure OpenAI deployment: `{endpoint}/openai/deployments/{deployment}/...`.

    Authenticates with an `api-key` header, or with a bearer token from `token_provider`
    (Entra ID); exactly one of the two.
    """

    provider_kind = ProviderKind.AZURE_OPENAI

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        endpoint: str,
        deployment: str,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        api_version: str = AZURE_API_VERSION,
        model: str | None = None,
    ) -> None:
        if (api_key is None) == (token_provider is None):
            raise ValueError("give exactly one of api_key and token_provider")
        if not deployment:
            raise ValueError("deployment must not be empty")
        # The model behind a deployment is Azure's business; the deployment names it until
        # an answer says which model it was.
        super().__init__(client, model=model or deployment, api_key=api_key)
        self._token_provider = token_provider
        deployment_path = httpx.URL(endpoint.rstrip("/") + "/").join(
            f"openai/deployments/{deployment}/chat/completions"
        )
        self._url = str(deployment_path.copy_merge_params({"api-version": api_version}))

    async def _request_spec(self, request: CompletionRequest, *, stream: bool) -> HttpRequestSpec:
        headers = {"content-type": "application/json"}
        if self._token_provider is not None:
            headers["authorization"] = f"Bearer {await self._token_provider()}"
        elif self._api_key:
            headers["api-key"] = self._api_key
        body = chat_completions_body(request, model=None, stream=stream)
        return HttpRequestSpec(url=self._url, headers=headers, body=body)
