"""Values bound for the duration of one call: logging context and context variables.

Each call runs in its own asyncio task, whose context is a copy taken when the call
started, so nothing bound here can leak into another call. Unbinding on the way out
still matters to the interceptors that enclose this one. When grpc leaves a response
generator unfinished (the client went away), the event loop closes it later from
another context, where the tokens mean nothing and there is nothing left to unbind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import structlog

T = TypeVar("T")


@contextmanager
def bound_for_call(**values: str) -> Iterator[None]:
    """Bind structlog context keys for the duration of a call."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        _reset_in_same_context(lambda: structlog.contextvars.reset_contextvars(**tokens))


@contextmanager
def set_for_call(variable: ContextVar[T], value: T) -> Iterator[None]:
    """Set a context variable for the duration of a call."""
    token = variable.set(value)
    try:
        yield
    finally:
        _reset_in_same_context(lambda: variable.reset(token))


def _reset_in_same_context(reset: Callable[[], object]) -> None:
    try:
        reset()
    except ValueError:
        # "created in a different Context": a generator closed by the event loop
        # after its call ended; that call's context is already gone.
        return
