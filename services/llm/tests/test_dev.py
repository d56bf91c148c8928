"""The built-in dev provider: deterministic, and it says what it is in every answer."""

from __future__ import annotations

import orjson

from mainmast_llm._completion import (
    ChatMessage,
    CompletionRequest,
    CompletionResponse,
    FinishReason,
    ProviderKind,
    Role,
    TextDelta,
)
from mainmast_llm._dev import DEV_MODEL, DEV_NOTICE, DevAdapter


def ask(text: str, **options) -> CompletionRequest:
    return CompletionRequest(messages=(ChatMessage(Role.USER, text),), **options)


async def test_every_answer_names_the_dev_provider_and_echoes_the_question():
    response = await DevAdapter().complete(ask("Summarize this document"))

    assert response.text == f"{DEV_NOTICE} Summarize this document"
    assert response.provider is ProviderKind.DEV
    assert response.model == DEV_MODEL
    assert response.finish_reason is FinishReason.STOP


async def test_the_same_request_gets_the_same_answer():
    request = ask("Same question", system="Be brief.")
    first, second = DevAdapter(), DevAdapter()

    one = await first.complete(request)
    two = await second.complete(request)

    assert (one.text, one.prompt_tokens, one.completion_tokens) == (
        two.text,
        two.prompt_tokens,
        two.completion_tokens,
    )
    assert one.prompt_tokens == 4  # "Be brief." and "Same question"
    assert one.completion_tokens == len(one.text.split())


async def test_max_tokens_cuts_the_answer_and_says_so():
    response = await DevAdapter().complete(ask("one two three", max_tokens=3))

    assert response.completion_tokens == 3
    assert response.text == " ".join(DEV_NOTICE.split()[:3])
    assert response.finish_reason is FinishReason.LENGTH


async def test_a_stop_sequence_ends_the_answer_before_it():
    response = await DevAdapter().complete(ask("alpha STOP beta", stop=("STOP",)))

    assert response.text == f"{DEV_NOTICE} alpha "
    assert response.provider_finish_reason == "stop_sequence"


async def test_json_mode_answers_a_json_object_that_names_the_provider():
    response = await DevAdapter().complete(ask("hello", json_mode=True, max_tokens=1))

    assert orjson.loads(response.text) == {
        "provider": "dev",
        "notice": DEV_NOTICE,
        "echo": "hello",
    }


async def test_the_stream_is_the_answer_word_by_word_then_the_response():
    request = ask("stream me")
    events = [event async for event in DevAdapter().stream(request)]
    whole = await DevAdapter().complete(request)

    deltas, final = events[:-1], events[-1]
    assert all(isinstance(delta, TextDelta) for delta in deltas)
    assert "".join(delta.text for delta in deltas) == whole.text
    assert len(deltas) == len(whole.text.split(" "))
    assert isinstance(final, CompletionResponse)
    assert final.text == whole.text
