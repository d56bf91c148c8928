"""Anthropic's Messages API (`POST /v1/messages`), streaming included.

A stream is server-sent events named by type: `message_start` (model, input tokens),
`content_block_start`, `content_block_delta` (text), `content_block_stop`,
`message_delta` (stop reason, output tokens), `message_stop` (the end), `ping`
(keep-alive) and `error` (a failure after the 200, such as `overloaded_error`).

Anthropic has no JSON mode; a JSON request is answered by prefilling the assistant's
turn with `{`, the documented way to make the model continue a JSON object.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Final

import httpx

from ._adapter import CompletionDraft, HttpAdapter, HttpRequestSpec
from ._completion import CompletionRequest, FinishReason, ProviderKind
from ._http_call import StreamedBody, parse_json_object
from ._json_fields import count, text_or_empty
from ._provider_errors import error_in_stream, malformed_response_error

ANTHROPIC_BASE_URL: Final = "https://api.anthropic.com"
"""Where Anthropic's API lives."""

ANTHROPIC_VERSION: Final = "2023-06-01"
"""The `anthropic-version` header: the Messages API's current version."""

DEFAULT_MAX_TOKENS: Final = 4096
"""Anthropic requires `max_tokens`; this is what a request without one asks for."""

_JSON_PREFILL: Final = "{"

_FINISH_REASONS: Final = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "refusal": FinishReason.CONTENT_FILTER,
}

# The HTTP status each error type of an `error` event stands for (Anthropic's own table).
_ERROR_TYPE_STATUS: Final = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicAdapter(HttpAdapter):
    """Anthropic's Messages API with an `x-api-key`."""

    provider_kind = ProviderKind.ANTHROPIC

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        model: str,
        api_key: str,
        base_url: str = ANTHROPIC_BASE_URL,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        super().__init__(client, model=model, secrets=(api_key,))
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._default_max_tokens = default_max_tokens

    async def _request_spec(self, request: CompletionRequest, *, stream: bool) -> HttpRequestSpec:
        messages = [{"role": m.role.value, "content": m.content} for m in request.messages]
        if request.json_mode:
            messages.append({"role": "assistant", "content": _JSON_PREFILL})
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens or self._default_max_tokens,
            "messages": messages,
        }
        if request.system:
            body["system"] = request.system
        if request.temperature is not None:
            # Anthropic's range ends at 1, the normalised request's at 2: a value within
            # both means the same to either, and a hotter one gets Anthropic's hottest.
            body["temperature"] = min(request.temperature, 1.0)
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if stream:
            body["stream"] = True
        headers = {
            "content-type": "application/json",
            "x-api-key": self._api_key,
            "anthropic-version": ANTHROPIC_VERSION,
        }
        return HttpRequestSpec(url=self._url, headers=headers, body=body)

    def _read_completion(
        self, request: CompletionRequest, payload: dict[str, Any]
    ) -> CompletionDraft:
        content = payload.get("content")
        if not isinstance(content, list):
            raise malformed_response_error(self.provider, "the answer has no content")
        draft = CompletionDraft(model=text_or_empty(payload.get("model")))
        if request.json_mode:
            draft.parts.append(_JSON_PREFILL)
        draft.parts += [
            text_or_empty(block.get("text"))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        ]
        self._read_stop_reason(draft, payload.get("stop_reason"))
        usage = payload.get("usage")
        if isinstance(usage, dict):
            draft.prompt_tokens = count(usage.get("input_tokens"))
            draft.completion_tokens = count(usage.get("output_tokens"))
        return draft

    async def _read_stream(
        self,
        request: CompletionRequest,
        body: StreamedBody,
        draft: CompletionDraft,
    ) -> AsyncGenerator[str, None]:
        if request.json_mode:
            draft.parts.append(_JSON_PREFILL)
            yield _JSON_PREFILL
        async for event in body.events():
            if event.event == "ping":
                continue
            payload = parse_json_object(self._call, event.data, status=body.status)
            kind = event.event if event.event != "message" else payload.get("type")
            if kind == "message_stop":
                return
            if kind == "error":
                raise self._stream_error(payload.get("error"))
            if kind == "message_start":
                self._read_message_start(draft, payload.get("message"))
            elif kind == "content_block_delta":
                delta = payload.get("delta")
                if not isinstance(delta, dict):
                    raise malformed_response_error(self.provider, "a content delta is missing")
                text = text_or_empty(delta.get("text"))
                if text:
                    draft.parts.append(text)
                    yield text
            elif kind == "message_delta":
                delta = payload.get("delta")
                if isinstance(delta, dict):
                    self._read_stop_reason(draft, delta.get("stop_reason"))
                usage = payload.get("usage")
                if isinstance(usage, dict):
                    draft.completion_tokens = count(usage.get("output_tokens"))
            # content_block_start/stop and event types added later carry nothing we need.
        raise malformed_response_error(self.provider, "the stream ended before message_stop")

    def _read_message_start(self, draft: CompletionDraft, message: object) -> None:
        if not isinstance(message, dict):
            raise malformed_response_error(self.provider, "message_start has no message")
        draft.model = text_or_empty(message.get("model")) or draft.model
        usage = message.get("usage")
        if isinstance(usage, dict):
            draft.prompt_tokens = count(usage.get("input_tokens"))
            draft.completion_tokens = count(usage.get("output_tokens"))

    @staticmethod
    def _read_stop_reason(draft: CompletionDraft, reason: object) -> None:
        if isinstance(reason, str) and reason:
            draft.provider_finish_reason = reason
            draft.finish_reason = _FINISH_REASONS.get(reason, FinishReason.OTHER)

    def _stream_error(self, error: object) -> Exception:
        error_type = text_or_empty(error.get("type")) if isinstance(error, dict) else ""
        message = text_or_empty(error.get("message")) if isinstance(error, dict) else ""
        status = _ERROR_TYPE_STATUS.get(error_type, 500)
        return error_in_stream(self.provider, status, message, secrets=self._call.secrets)
