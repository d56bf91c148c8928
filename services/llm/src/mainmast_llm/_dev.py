"""The built-in development provider: deterministic, no model behind it, and says so.

It lets the fleet run with no configuration. Every answer starts with `DEV_NOTICE`,
carries `ProviderKind.DEV` and the model `DEV_MODEL`, and echoes the last user message;
tokens are whitespace-separated words. `max_tokens`, stop sequences and JSON mode are
honoured, so callers can exercise their handling of each.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Final

import orjson

from ._adapter import CompletionDraft
from ._completion import (
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    ProviderKind,
    Role,
    StreamEvent,
    TextDelta,
)

DEV_MODEL: Final = "mainmast-dev"
"""The model name of every dev answer."""

DEV_NOTICE: Final = "[mainmast dev provider: a deterministic echo, no language model]"
"""How every plain-text dev answer begins."""


class DevAdapter:
    """The dev provider as an adapter: the same request, the same answer, every time."""

    @property
    def provider(self) -> ProviderKind:
        """Always ProviderKind.DEV."""
        return ProviderKind.DEV

    @property
    def model(self) -> str:
        """Always DEV_MODEL."""
        return DEV_MODEL

    def __repr__(self) -> str:
        return "DevAdapter()"

    async def complete(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> CompletionResponse:
        """The dev answer to `request`; it never waits, so no deadline can pass."""
        started = time.monotonic()
        return self._draft(request).finished(ProviderKind.DEV, DEV_MODEL, started)

    async def stream(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The dev answer word by word, then the whole response."""
        started = time.monotonic()
        draft = self._draft(request)
        for piece in _word_pieces("".join(draft.parts)):
            yield TextDelta(piece)
        yield draft.finished(ProviderKind.DEV, DEV_MODEL, started)

    @staticmethod
    def _draft(request: CompletionRequest) -> CompletionDraft:
        last_user = next(m.content for m in reversed(request.messages) if m.role is Role.USER)
        if request.json_mode:
            # A JSON answer is never cut: a cut object would not be the JSON asked for.
            text = orjson.dumps(
                {"provider": "dev", "notice": DEV_NOTICE, "echo": last_user}
            ).decode()
            finish, provider_finish = FinishReason.STOP, "stop"
        else:
            text, finish, provider_finish = _shaped(f"{DEV_NOTICE} {last_user}", request)
        prompt = [request.system, *(m.content for m in request.messages)]
        return CompletionDraft(
            parts=[text],
            provider_finish_reason=provider_finish,
            finish_reason=finish,
            prompt_tokens=sum(len(part.split()) for part in prompt),
            completion_tokens=len(text.split()),
        )


def _shaped(text: str, request: CompletionRequest) -> tuple[str, FinishReason, str]:
    """`text` cut at the first stop sequence, then to `max_tokens` words."""
    finish, provider_finish = FinishReason.STOP, "stop"
    cuts = [text.find(stop) for stop in request.stop if stop in text]
    if cuts:
        text, provider_finish = text[: min(cuts)], "stop_sequence"
    words = text.split(" ")
    if request.max_tokens is not None and len(text.split()) > request.max_tokens:
        kept: list[str] = []
        for word in words:
            if len(" ".join([*kept, word]).split()) > request.max_tokens:
                break
            kept.append(word)
        text, finish, provider_finish = " ".join(kept), FinishReason.LENGTH, "length"
    return text, finish, provider_finish


def _word_pieces(text: str) -> list[str]:
    """`text` in pieces of one word each, the separating space leading; joined, `text`."""
    words = text.split(" ")
    return [words[0], *(" " + word for word in words[1:])] if text else []
