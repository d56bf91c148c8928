"""The server-sent events parser follows the standard's framing rules."""

from __future__ import annotations

from mainmast_llm._sse import ServerSentEvent, iter_server_sent_events


async def parse(text: str) -> list[ServerSentEvent]:
    async def lines():
        for line in text.split("\n"):
            yield line

    return [event async for event in iter_server_sent_events(lines())]


async def test_events_are_dispatched_at_blank_lines_with_their_names():
    events = await parse("event: ping\ndata: {}\n\ndata: one\n\n")

    assert events == [ServerSentEvent("ping", "{}"), ServerSentEvent("message", "one")]


async def test_data_lines_are_joined_and_one_leading_space_is_dropped():
    events = await parse("data:first\ndata:  second\n\n")

    assert events == [ServerSentEvent("message", "first\n second")]


async def test_comments_ids_and_events_without_data_are_not_dispatched():
    events = await parse(": keep-alive\nid: 7\nretry: 100\n\nevent: lonely\n\ndata: x\n\n")

    assert events == [ServerSentEvent("message", "x")]


async def test_an_unfinished_event_at_the_end_of_input_is_dropped():
    events = await parse("data: whole\n\ndata: half")

    assert events == [ServerSentEvent("message", "whole")]
