"""Server-sent events (the WHATWG event-stream format) over lines of text.

Small enough to keep here: the adapters need exactly the parsing rules of the standard
(`data:` lines joined by newlines, `event:` names, comments, blank-line dispatch) and to
learn, at the end of input, whether the stream stopped in the middle of an event.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event."""

    event: str
    """The `event:` field; "message" when the event names none."""
    data: str
    """The `data:` lines, joined with newlines."""


async def iter_server_sent_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """The events of a stream given line by line (without line terminators).

    An event is dispatched at the blank line that ends it; an unfinished event at the end
    of input is dropped, as the standard says, so a truncated stream loses its tail
    rather than delivering half an event.
    """
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event=event or "message", data="\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment, often sent as a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        # `id` and `retry` serve reconnection, which a completion stream never does.
