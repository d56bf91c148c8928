"""Structured logging for mainmast services: one setup, context on every line, no secrets.

Call `configure_logging()` once at startup (it is idempotent; calling it again applies the new
arguments). Lines are JSON when the stream is not a terminal and readable console output
when it is. structlog events (`get_logger(__name__).info("user.created", user_id=...)`) and
records of the standard library's loggers (grpc, uvicorn, sqlalchemy, alembic, your own)
go through the same processors: context, redaction, rendering. The lines HTTP clients write
for every request (httpx, httpcore) are held to WARNING below DEBUG (`PER_REQUEST_LOGGERS`).

Context: `bind_context(request_id=..., tenant=...)`, `unbind_context(...)` and
`with bound_context(...)` keep values in structlog's contextvars, so they follow the
current task or thread and appear on every line. The standard keys are `CONTEXT_KEYS`;
`trace_id` and `span_id` are filled from the current OpenTelemetry span unless bound.

Redaction runs before any renderer and cannot be turned off (see `mainmast._redaction`):
credential keys at any depth, `Bearer` and `Basic` credentials and URL passwords inside
text, and every value passed to `register_secret`, which works before and after
`configure_logging`. `allow_keys` exempts named keys from the key rule only.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Final, TextIO

import structlog
from structlog.typing import FilteringBoundLogger, Processor

from mainmast._log_pipeline import (
    LineHandler,
    OutputFactory,
    event_processors,
    is_terminal,
    render_json_line,
    stdlib_formatter,
)
from mainmast._redaction import MASK, MIN_SECRET_LENGTH, Redactor, SecretRegistry

__all__ = [
    "CONTEXT_KEYS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "SecretRegistry",
    "bind_context",
    "bound_context",
    "configure_logging",
    "get_logger",
    "register_secret",
    "reset_logging",
    "unbind_context",
    "uvicorn_log_config",
]

CONTEXT_KEYS: Final = ("request_id", "trace_id", "span_id", "tenant", "subject")
"""The context every service binds; any other key may be bound too."""

UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class _ProcessLogging:
    """What `configure_logging` changed in this process, and the secrets it masks."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.secrets = SecretRegistry()
        self.handler: logging.Handler | None = None
        self.saved_root_level: int | None = None
        self.saved_loggers: dict[str, tuple[list[logging.Handler], bool]] = {}
        self.saved_levels: dict[str, int] = {}


@functools.cache
def _process_logging() -> _ProcessLogging:
    # One per process, made on first use (never at import): logging is process-wide state.
    return _ProcessLogging()


def configure_logging(
    *,
    level: str | int = "INFO",
    json: bool | None = None,
    stream: TextIO | None = None,
    allow_keys: Iterable[str] = (),
    secrets: SecretRegistry | None = None,
) -> None:
    """Set up structlog and the standard library's root logger to write redacted lines.

    `level` is a level name or number. `json=None` writes JSON lines unless `stream` (by
    default `sys.stdout`, looked up now) is a terminal. `allow_keys` names keys whose values
    are kept although their name looks like a credential. `secrets` replaces the registry
    that `register_secret` fills; secrets registered before are carried over into it.
    Calling it again replaces the previous setup; it never adds a second handler.
    """
    level_number = _level_number(level)
    output_stream = sys.stdout if stream is None else stream
    if not callable(getattr(output_stream, "write", None)):
        raise TypeError(f"stream must be a text stream with write(), not {output_stream!r}")
    if json is not None and not isinstance(json, bool):
        raise TypeError(f"json must be True, False or None, not {json!r}")
    terminal = is_terminal(output_stream)
    use_json = not terminal if json is None else json

    state = _process_logging()
    with state.lock:
        registry = state.secrets if secrets is None else secrets
        redactor = Redactor(registry, allow_keys=allow_keys)
        if registry is not state.secrets:
            registry.absorb(state.secrets)
            state.secrets = registry
        renderer: Processor = (
            render_json_line if use_json else structlog.dev.ConsoleRenderer(colors=terminal)
        )
        outputs = OutputFactory(output_stream)
        structlog.configure(
            processors=event_processors(redactor, renderer),
            wrapper_class=structlog.make_filtering_bound_logger(level_number),
            context_class=dict,
            logger_factory=outputs,
            # Not cached, so that a later configure_logging() and structlog.testing's
            # capture_logs() reach loggers that were already in use.
            cache_logger_on_first_use=False,
        )
        _route_standard_library(state, LineHandler(outputs(), stdlib_formatter(redactor, renderer)))
        logging.getLogger().setLevel(level_number)
        _quiet_per_request_loggers(state, level_number)


PARAMETER_ECHOING_LOGGERS: Final = ("aiosqlite",)
"""Loggers whose DEBUG lines carry every statement with its bound parameters.

Parameters are values (password hashes, token digests, secrets) that no key name marks as
sensitive, so redaction cannot recognise them: those lines never reach the output, whatever
the level. (SQLAlchemy's own statement logging is kept parameter-free by DatabasePool.)
"""


PER_REQUEST_LOGGERS: Final = ("httpx", "httpcore")
"""Loggers of HTTP clients that write a line for every request they make.

httpx logs each request at INFO (`HTTP Request: POST ... "HTTP/1.1 200 OK"`), httpcore
each step of one at DEBUG. A service calling other services or providers makes those
requests all the time, and rendering one line each cost the llm service a few percent of
its CPU per provider call, for lines that say nothing its own logs do not. They are held to
WARNING (or the configured level, if higher); at DEBUG they write everything.
"""


def _quiet_per_request_loggers(state: _ProcessLogging, level_number: int) -> None:
    for name in PER_REQUEST_LOGGERS:
        per_request_logger = logging.getLogger(name)
        state.saved_levels.setdefault(name, per_request_logger.level)
        per_request_logger.setLevel(
            logging.NOTSET if level_number <= logging.DEBUG else max(level_number, logging.WARNING)
        )


def _not_a_parameter_echo(record: logging.LogRecord) -> bool:
    """False for the DEBUG statement echo of a driver that logs bound parameters."""
    return not (
        record.levelno < logging.INFO and record.name.partition(".")[0] in PARAMETER_ECHOING_LOGGERS
    )


def _route_standard_library(state: _ProcessLogging, handler: logging.Handler) -> None:
    handler.addFilter(_not_a_parameter_echo)
    root = logging.getLogger()
    if state.handler is None:
        state.saved_root_level = root.level
    else:
        root.removeHandler(state.handler)
    root.addHandler(handler)
    state.handler = handler
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        if name not in state.saved_loggers:
            state.saved_loggers[name] = (list(uvicorn_logger.handlers), uvicorn_logger.propagate)
        # uvicorn gives its loggers handlers of their own and stops propagation; lines
        # written there would bypass context and redaction.
        for own_handler in list(uvicorn_logger.handlers):
            uvicorn_logger.removeHandler(own_handler)
        uvicorn_logger.propagate = True


def reset_logging() -> None:
    """Undo `configure_logging` and forget registered secrets and bound context (for tests)."""
    state = _process_logging()
    with state.lock:
        root = logging.getLogger()
        if state.handler is not None:
            root.removeHandler(state.handler)
            state.handler = None
        if state.saved_root_level is not None:
            root.setLevel(state.saved_root_level)
            state.saved_root_level = None
        for name, (handlers, propagate) in state.saved_loggers.items():
            uvicorn_logger = logging.getLogger(name)
            for handler in list(uvicorn_logger.handlers):
                uvicorn_logger.removeHandler(handler)
            for handler in handlers:
                uvicorn_logger.addHandler(handler)
            uvicorn_logger.propagate = propagate
        state.saved_loggers.clear()
        for name, level in state.saved_levels.items():
            logging.getLogger(name).setLevel(level)
        state.saved_levels.clear()
        state.secrets = SecretRegistry()
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """A structlog logger; `name` (usually `__name__`) appears as `logger` on its lines."""
    if name is None:
        return structlog.get_logger()  # type: ignore[no-any-return]
    return structlog.get_logger(name)  # type: ignore[no-any-return]


def register_secret(value: str) -> None:
    """Mask `value` in every line from now on, wherever it appears; before or after setup."""
    _process_logging().secrets.register(value)


def bind_context(**values: Any) -> None:
    """Bind context for the current task or thread: it appears on every line from now on."""
    structlog.contextvars.bind_contextvars(**values)


def unbind_context(*keys: str) -> None:
    """Remove context keys bound with `bind_context`; unknown keys are ignored."""
    structlog.contextvars.unbind_contextvars(*keys)


def bound_context(**values: Any) -> AbstractContextManager[None]:
    """Bind context inside a `with` block; on exit the previous values come back."""
    return structlog.contextvars.bound_contextvars(**values)


def uvicorn_log_config(level: str | int = "INFO") -> dict[str, Any]:
    """A `log_config` for `uvicorn.run` that sends uvicorn's lines through ours.

    uvicorn applies its own logging configuration at startup, after `configure_logging`;
    this one gives its loggers no handlers and lets them propagate to the root logger.
    """
    level_name = logging.getLevelName(_level_number(level))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # Unused by any handler; uvicorn writes its `use_colors` option into these two.
        "formatters": {
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(message)s"},
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": "%(message)s"},
        },
        "loggers": {
            name: {"handlers": [], "level": level_name, "propagate": True}
            for name in UVICORN_LOGGERS
        },
    }


def _level_number(level: str | int) -> int:
    if isinstance(level, bool):
        raise TypeError(f"level must be a level name or number, not {level!r}")
    if isinstance(level, int):
        if level < 0:
            raise ValueError(f"level must not be negative, got {level}")
        return level
    if isinstance(level, str):
        number = logging.getLevelNamesMapping().get(level.strip().upper())
        if number is None:
            known = ", ".join(sorted(logging.getLevelNamesMapping()))
            raise ValueError(f"unknown log level {level!r}; use one of {known}")
        return number
    raise TypeError(f"level must be a level name or number, not {type(level).__name__}")
