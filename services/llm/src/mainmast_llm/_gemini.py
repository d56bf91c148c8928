"""Google Gemini's generateContent and streamGenerateContent (`?alt=sse`).

The key travels in the `x-goog-api-key` header, never in the URL, so it cannot reach an
access log. A stream is server-sent events, each a whole GenerateContentResponse; there is
no end marker, so a stream is complete when a candidate carried its `finishReason`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Final
from urllib.parse import quote

import httpx

from ._adapter import CompletionDraft, HttpAdapter, HttpRequestSpec
from ._completion import CompletionRequest, FinishReason, ProviderKind, Role
from ._http_call import StreamedBody, parse_json_object
from ._json_fields import count, text_or_empty
from ._provider_errors import error_in_stream, malformed_response_error

GEMINI_BASE_URL: Final = "https://generativelanguage.googleapis.com/v1beta"
"""Where the Gemini API lives, version included."""

_ROLES: Final = {Role.USER: "user", Role.ASSISTANT: "model"}

_FINISH_REASONS: Final = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
}


class GeminiAdapter(HttpAdapter):
    """Gemini's generateContent with an API key."""

    provider_kind = ProviderKind.GEMINI

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        model: str,
        api_key: str,
        base_url: str = GEMINI_BASE_URL,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        super().__init__(client, model=model, secrets=(api_key,))
        self._api_key = api_key
        self._model_url = f"{base_url.rstrip('/')}/models/{quote(model, safe='')}"

    async def _request_spec(self, request: CompletionRequest, *, stream: bool) -> HttpRequestSpec:
        body: dict[str, Any] = {
            "contents": [
                {"role": _ROLES[m.role], "parts": [{"text": m.content}]} for m in request.messages
            ]
        }
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.stop:
            config["stopSequences"] = list(request.stop)
        if request.json_mode:
            config["responseMimeType"] = "application/json"
        if config:
            body["generationConfig"] = config
        url = (
            f"{self._model_url}:streamGenerateContent?alt=sse"
            if stream
            else f"{self._model_url}:generateContent"
        )
        headers = {"content-type": "application/json", "x-goog-api-key": self._api_key}
        return HttpRequestSpec(url=url, headers=headers, body=body)

    def _read_completion(
        self, request: CompletionRequest, payload: dict[str, Any]
    ) -> CompletionDraft:
        draft = CompletionDraft()
        self._read_chunk(draft, payload)
        if draft.finish_reason is None:
            raise malformed_response_error(self.provider, "the answer has no finished candidate")
        return draft

    async def _read_stream(
        self,
        request: CompletionRequest,
        body: StreamedBody,
        draft: CompletionDraft,
    ) -> AsyncGenerator[str, None]:
        async for event in body.events():
            chunk = parse_json_object(self._call, event.data, status=body.status)
            text = self._read_chunk(draft, chunk)
            if text:
                yield text
        if draft.finish_reason is None:
            raise malformed_response_error(self.provider, "the stream ended before finishReason")

    def _read_chunk(self, draft: CompletionDraft, chunk: dict[str, Any]) -> str:
        """Fold one GenerateContentResponse into `draft`; return its text."""
        if "error" in chunk:
            error = chunk["error"]
            status = count(error.get("code")) if isinstance(error, dict) else 0
            message = text_or_empty(error.get("message")) if isinstance(error, dict) else ""
            raise error_in_stream(self.provider, status or 500, message, secrets=self._call.secrets)
        draft.model = text_or_empty(chunk.get("modelVersion")) or draft.model
        usage = chunk.get("usageMetadata")
        if isinstance(usage, dict):
            draft.prompt_tokens = count(usage.get("promptTokenCount"))
            draft.completion_tokens = count(usage.get("candidatesTokenCount"))
        candidates = chunk.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                # The prompt itself was blocked: an answer, of no text.
                draft.provider_finish_reason = text_or_empty(feedback.get("blockReason"))
                draft.finish_reason = FinishReason.CONTENT_FILTER
                return ""
            if usage is not None:
                return ""  # a usage-only chunk
            raise malformed_response_error(self.provider, "a response has no candidates")
        candidate = candidates[0]
        if not isinstance(candidate, dict):
            raise malformed_response_error(self.provider, "a candidate is not an object")
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        text = "".join(
            text_or_empty(part.get("text"))
            for part in (parts if isinstance(parts, list) else [])
            if isinstance(part, dict) and not part.get("thought")
        )
        if text:
            draft.parts.append(text)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason and reason != "FINISH_REASON_UNSPECIFIED":
            draft.provider_finish_reason = reason
            draft.finish_reason = _FINISH_REASONS.get(reason, FinishReason.OTHER)
        return text
