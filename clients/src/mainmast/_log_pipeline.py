"""The pieces `mainmast.logging` assembles: processors, renderers and the stdlib handler."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from mainmast._redaction import Redactor

_TRACE_ID = "trace_id"
_SPAN_ID = "span_id"


def add_trace_ids(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Fill trace_id and span_id from the current OpenTelemetry span, unless bound already."""
    if _TRACE_ID in event_dict and _SPAN_ID in event_dict:
        return event_dict
    span_context = trace.get_current_span().get_span_context()
    # With no active span this is the invalid context: one lookup, nothing added.
    if span_context.is_valid:
        event_dict.setdefault(_TRACE_ID, format(span_context.trace_id, "032x"))
        event_dict.setdefault(_SPAN_ID, format(span_context.span_id, "016x"))
    return event_dict


def drop_color_message(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Drop uvicorn's `color_message` extra: the same message again, with terminal colours."""
    event_dict.pop("color_message", None)
    return event_dict


def render_json_line(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
    """Render the (already redacted) event as one line of JSON."""
    try:
        return orjson.dumps(event_dict, default=_unrenderable).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library does not.
        return json.dumps(event_dict, default=_unrenderable, ensure_ascii=False)


def _unrenderable(value: object) -> str:
    # Redaction turns every value it does not know into text first, so this is never reached
    # with a value that could carry a secret; the type name is all that is safe to print.
    return f"<unrenderable {type(value).__name__}>"


def event_processors(redactor: Redactor, renderer: Processor) -> list[Processor]:
    """The chain for structlog's own events: context, exception text, redaction, rendering."""
    return [
        add_logger_name,
        structlog.contextvars.merge_contextvars,
        structlog.processors.StackInfoRenderer(),
        # Exceptions become text before redaction, so their messages are redacted too.
        structlog.processors.format_exc_info,
        redactor,
        # These add only values of our own making, so they come after redaction.
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        renderer,
    ]


def stdlib_formatter(redactor: Redactor, renderer: Processor) -> logging.Formatter:
    """A formatter that puts standard library records through the same chain."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            drop_color_message,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
    )


class LineHandler(logging.Handler):
    """A stdlib handler writing through the same output, and lock, as structlog's events."""

    def __init__(self, output: NamedWriteLogger, formatter: logging.Formatter) -> None:
        """Write each formatted record to `output` as one line."""
        super().__init__()
        self.setFormatter(formatter)
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        """Format `record` and write it; failures go to `handleError` like any handler's."""
        try:
            self._output.msg(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib's name
        """Write a redacted notice instead of the stdlib's dump of the raw arguments to stderr."""
        error = sys.exc_info()[1]
        notice = logging.LogRecord(
            record.name,
            logging.ERROR,
            record.pathname,
            record.lineno,
            "a log record could not be written: %s: %s (message template %r)",
            (type(error).__name__, error, record.msg),
            None,
        )
        # Nothing safe is left to write if even the notice fails; logging must not raise.
        with contextlib.suppress(Exception):
            self._output.msg(self.format(notice))


class NamedWriteLogger(structlog.WriteLogger):
    """structlog's line writer with the name of the logger it was made for."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        """Write to `file` (sharing structlog's lock for it); `name` goes on each line."""
        super().__init__(file)
        self.name = name


class OutputFactory:
    """A structlog logger factory: one named writer per logger name, all on one stream."""

    _LIMIT = 1024

    def __init__(self, stream: TextIO) -> None:
        """Make writers for `stream`."""
        self._stream = stream
        self._by_name: dict[str | None, NamedWriteLogger] = {}

    def __call__(self, *args: Any) -> NamedWriteLogger:
        """Return the writer for the name `get_logger` was called with (or none)."""
        name = args[0] if args and isinstance(args[0], str) else None
        writer = self._by_name.get(name)
        if writer is None:
            if len(self._by_name) >= self._LIMIT:
                self._by_name.clear()
            writer = self._by_name[name] = NamedWriteLogger(self._stream, name)
        return writer


def add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add the name the logger was made with as `logger`, unless the event has one."""
    name = getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (streams without `isatty` are not)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except ValueError:  # a closed stream
        return False
