"""The normalised completion: one request and one response whatever provider answers.

Every adapter takes a `CompletionRequest` and answers a `CompletionResponse`, or streams
`TextDelta`s ending in the `CompletionResponse` that carries the whole text and its usage.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from mainmast.errors import FieldViolation, ValidationError
from mainmast.llm import LLM_ERROR_DOMAIN

MAX_STOP_SEQUENCES: Final = 4
"""The most stop sequences a request may carry (the providers' common limit)."""

MAX_TEMPERATURE: Final = 2.0
"""The highest sampling temperature a request may ask for."""


class Role(enum.StrEnum):
    """Who wrote a message of the conversation."""

    USER = "user"
    ASSISTANT = "assistant"


class ProviderKind(enum.StrEnum):
    """A provider API an adapter speaks."""

    OPENAI = "openai"
    AZURE_OPENAI = "azure_openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OLLAMA = "ollama"
    DEV = "dev"


class FinishReason(enum.StrEnum):
    """Why the model stopped, normalised across providers."""

    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation."""

    role: Role
    """Who wrote it."""
    content: str
    """Its text."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What to complete; valid by construction (ValidationError otherwise)."""

    messages: tuple[ChatMessage, ...]
    """The conversation, oldest first; not empty, and it ends with a user message."""
    system: str = ""
    """The system instruction; empty for none."""
    temperature: float | None = None
    """Sampling temperature from 0 to 2; None for the provider's default."""
    max_tokens: int | None = None
    """The most tokens to generate; None for the adapter's default."""
    stop: tuple[str, ...] = ()
    """Up to four sequences that end the answer; they are not part of the text."""
    json_mode: bool = False
    """Ask for a single JSON object instead of plain text."""

    def __post_init__(self) -> None:
        violations = list(_request_violations(self))
        if violations:
            raise ValidationError(
                "The completion input is invalid: "
                + "; ".join(f"{v.field}: {v.description}" for v in violations),
                field_violations=violations,
                reason="INVALID_COMPLETION_INPUT",
                domain=LLM_ERROR_DOMAIN,
            )


def _request_violations(request: CompletionRequest) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if not request.messages:
        violations.append(FieldViolation("messages", "at least one message is required"))
    # Typed callers cannot get these wrong, but the servicer builds requests from the wire.
    entries: tuple[object, ...] = request.messages
    for index, message in enumerate(entries):
        if not isinstance(message, ChatMessage) or not isinstance(message.role, Role):
            violations.append(
                FieldViolation(f"messages[{index}]", "must be a ChatMessage with a Role")
            )
    if request.messages and getattr(request.messages[-1], "role", None) is not Role.USER:
        violations.append(FieldViolation("messages", "the last message must be a user message"))
    if request.temperature is not None and not (
        math.isfinite(request.temperature) and 0 <= request.temperature <= MAX_TEMPERATURE
    ):
        violations.append(FieldViolation("temperature", f"must be between 0 and {MAX_TEMPERATURE}"))
    if request.max_tokens is not None and request.max_tokens < 1:
        violations.append(FieldViolation("max_tokens", "must be at least 1"))
    if len(request.stop) > MAX_STOP_SEQUENCES:
        violations.append(FieldViolation("stop", f"at most {MAX_STOP_SEQUENCES} sequences"))
    if any(not sequence for sequence in request.stop):
        violations.append(FieldViolation("stop", "a stop sequence must not be empty"))
    return violations


@dataclass(frozen=True, slots=True)
class CompletionResponse:
    """A finished completion as one provider gave it."""

    text: str
    """The generated text (for a JSON-mode request, a JSON object)."""
    finish_reason: FinishReason
    """Why the model stopped, normalised."""
    provider_finish_reason: str
    """The provider's own word for it, e.g. `end_turn` or `stop`."""
    prompt_tokens: int
    """Tokens of the input, as the provider counted them."""
    completion_tokens: int
    """Tokens of the answer, as the provider counted them."""
    provider: ProviderKind
    """The provider that answered."""
    model: str
    """The provider's model name that answered."""
    latency: timedelta
    """From sending the request to the last byte of the answer."""

    @property
    def total_tokens(self) -> int:
        """prompt_tokens + completion_tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TextDelta:
    """The next piece of text of a stream."""

    text: str
    """The piece; never empty."""


StreamEvent = TextDelta | CompletionResponse
"""What a stream yields: TextDeltas, then exactly one CompletionResponse, last."""
