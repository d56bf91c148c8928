"""Ollama's `/api/chat`, streaming as newline-delimited JSON.

Each line of a stream is one JSON object; the last has `"done": true` with the stop
reason and the token counts. A stream that ends before it is truncated.
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

OLLAMA_BASE_URL: Final = "http://127.0.0.1:11434"
"""Where a local Ollama listens by default."""

_FINISH_REASONS: Final = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class OllamaAdapter(HttpAdapter):
    """Ollama's chat API; no credentials (put a proxy in front for those)."""

    provider_kind = ProviderKind.OLLAMA

    def __init__(
        self, client: httpx.AsyncClient, *, model: str, base_url: str = OLLAMA_BASE_URL
    ) -> None:
        super().__init__(client, model=model)
        self._url = base_url.rstrip("/") + "/api/chat"

    async def _request_spec(self, request: CompletionRequest, *, stream: bool) -> HttpRequestSpec:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": m.role.value, "content": m.content} for m in request.messages]
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.stop:
            options["stop"] = list(request.stop)
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": stream}
        if options:
            body["options"] = options
        if request.json_mode:
            body["format"] = "json"
        return HttpRequestSpec(
            url=self._url, headers={"content-type": "application/json"}, body=body
        )

    def _read_completion(
        self, request: CompletionRequest, payload: dict[str, Any]
    ) -> CompletionDraft:
        draft = CompletionDraft()
        self._read_line(draft, payload)
        if payload.get("done") is not True:
            raise malformed_response_error(self.provider, "the answer is not done")
        return draft

    async def _read_stream(
        self,
        request: CompletionRequest,
        body: StreamedBody,
        draft: CompletionDraft,
    ) -> AsyncGenerator[str, None]:
        async for line in body.lines():
            if not line.strip():
                continue
            payload = parse_json_object(self._call, line, status=body.status)
            text = self._read_line(draft, payload)
            if text:
                yield text
            if payload.get("done") is True:
                return
        raise malformed_response_error(self.provider, "the stream ended before done")

    def _read_line(self, draft: CompletionDraft, payload: dict[str, Any]) -> str:
        """Fold one chat response object into `draft`; return its text."""
        if "error" in payload:
            raise error_in_stream(self.provider, 500, text_or_empty(payload["error"]))
        message = payload.get("message")
        if not isinstance(message, dict) and payload.get("done") is not True:
            raise malformed_response_error(self.provider, "a response has no message")
        text = text_or_empty(message.get("content")) if isinstance(message, dict) else ""
        if text:
            draft.parts.append(text)
        draft.model = text_or_empty(payload.get("model")) or draft.model
        if payload.get("done") is True:
            reason = text_or_empty(payload.get("done_reason")) or "stop"
            draft.provider_finish_reason = reason
            draft.finish_reason = _FINISH_REASONS.get(reason, FinishReason.OTHER)
            draft.prompt_tokens = count(payload.get("prompt_eval_count"))
            draft.completion_tokens = count(payload.get("eval_count"))
        return text
