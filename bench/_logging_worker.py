"""One timed run of one logging contender, in a fresh interpreter: `bench/logging.py` starts it.

Usage: python -P bench/_logging_worker.py CONTENDER SINK_PATH COUNT

It builds the same events as every other contender (before timing), logs them all to the file
SINK_PATH, and prints one JSON object with the seconds spent logging. It imports only the
standard library at the top, because it also runs in the separate virtual environment that
holds netrun-logging and python-json-logger; `-P` keeps this directory off `sys.path`, where
`bench/logging.py` would shadow the standard library's `logging`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

LEAK_MARKER = "LEAK"
"""Every secret value in the events contains this, so `count(LEAK_MARKER)` counts leaks."""

REGISTERED_SECRETS = tuple(f"cfg-{LEAK_MARKER}-registered-{n}-9f3a7c2e" for n in range(3))
"""Values a config client handed out and registered; they appear inside message text."""

Event = tuple[str, dict[str, Any]]


def build_events(count: int, seed: int = 20251124) -> list[Event]:
    """The same mix for everyone: plain, nested credentials, URLs and DSNs, registered secrets."""
    rng = random.Random(seed)
    events: list[Event] = []
    for index in range(count):
        secret = f"{LEAK_MARKER}{index:06d}-{rng.getrandbits(32):08x}"
        kind = index % 4
        if kind == 0:
            events.append(
                (
                    "request handled",
                    {
                        "method": "GET",
                        "path": f"/v1/users/{index}",
                        "status": 200,
                        "duration_ms": round(rng.uniform(1, 50), 3),
                    },
                )
            )
        elif kind == 1:
            events.append(
                (
                    "user created",
                    {
                        "user": {
                            "name": f"user{index}",
                            "email": f"user{index}@example.com",
                            "password": f"pw-{secret}",
                            "profile": {"api_key": f"key-{secret}", "tags": ["admin", "beta"]},
                        },
                        "request": {
                            "headers": {
                                "Authorization": f"Bearer tok-{secret}",
                                "Accept": "application/json",
                            },
                            "query": [{"name": "page", "value": "2"}],
                        },
                        "max_tokens": 256,
                        "prompt_tokens": 31,
                        "author": "alice",
                    },
                )
            )
        elif kind == 2:
            events.append(
                (
                    "database connected",
                    {
                        "database_url": f"postgresql://app:db-{secret}@db.internal:5432/app",
                        "pool": {
                            "size": 20,
                            "replicas": [{"url": f"redis://:rd-{secret}@cache:6379/0"}],
                            "client_secret": f"cs-{secret}",
                            "refresh_token": f"rt-{secret}",
                        },
                    },
                )
            )
        else:
            registered = REGISTERED_SECRETS[index % len(REGISTERED_SECRETS)]
            events.append(
                (
                    f"loaded setting value {registered} for tenant t{index % 7}",
                    {"tenant": f"t{index % 7}", "setting": "PAYMENTS_WEBHOOK", "cached": True},
                )
            )
    return events


# -- (a) mainmast ---------------------------------------------------------------------------


def mainmast_logger(sink: TextIO) -> Callable[[str, dict[str, Any]], None]:
    """mainmast.logging as a service uses it: configure, register secrets, log key-values."""
    from mainmast.logging import configure_logging, get_logger, register_secret  # noqa: PLC0415

    configure_logging(stream=sink, json=True)
    for secret in REGISTERED_SECRETS:
        register_secret(secret)
    log = get_logger("bench")

    def emit(message: str, fields: dict[str, Any]) -> None:
        log.info(message, **fields)

    return emit


# -- (b) the standard library with python-json-logger and a redaction filter -----------------

_SENSITIVE_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "x_api_key",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "private_key",
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "credential",
        "credentials",
        "session_id",
        "dsn",
        "connection_string",
    }
)
_BEARER = re.compile(r"\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)[^\s/?#]*@")
_STANDARD_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """The usual redaction filter, walking nested values so it does the same work as ours."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len)[::-1]))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._text(record.getMessage())
        record.args = ()
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_RECORD_KEYS:
                setattr(record, key, self._value(key, value))
        return True

    def _value(self, key: str, value: Any) -> Any:
        if key.lower().replace("-", "_") in _SENSITIVE_KEYS:
            return "***"
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            return {k: self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value("", item) for item in value]
        return value

    def _text(self, text: str) -> str:
        text = self._secrets.sub("***", text)
        text = _BEARER.sub(r"\1***", text)
        return _URL_PASSWORD.sub(r"\1***@", text)


def stdlib_logger(sink: TextIO) -> Callable[[str, dict[str, Any]], None]:
    """logging + python-json-logger's JsonFormatter + RedactingFilter on the handler."""
    from pythonjsonlogger.json import JsonFormatter  # noqa: PLC0415

    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter(REGISTERED_SECRETS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    log = logging.getLogger("bench")

    def emit(message: str, fields: dict[str, Any]) -> None:
        log.info(message, extra=fields)

    return emit


# -- (c) plain structlog ----------------------------------------------------------------------


def structlog_logger(sink: TextIO) -> Callable[[str, dict[str, Any]], None]:
    """structlog's recommended fast setup with JSONRenderer; it has no redaction at all."""
    import structlog  # noqa: PLC0415

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(sink),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("bench")

    def emit(message: str, fields: dict[str, Any]) -> None:
        log.info(message, **fields)

    return emit


# -- (d) netrun-logging 2.0.0 -----------------------------------------------------------------


def netrun_logger(sink: TextIO) -> Callable[[str, dict[str, Any]], None]:
    """netrun-logging as its README shows it; its redaction is always on (top-level keys)."""
    # It prints to sys.stdout (structlog's PrintLoggerFactory with no file) at log time.
    sys.stdout = sink
    from netrun.logging import configure_logging, get_logger  # noqa: PLC0415

    configure_logging(app_name="bench", environment="bench", log_level="INFO")
    log = get_logger("bench")

    def emit(message: str, fields: dict[str, Any]) -> None:
        log.info(message, **fields)

    return emit


CONTENDERS: dict[str, Callable[[TextIO], Callable[[str, dict[str, Any]], None]]] = {
    "mainmast": mainmast_logger,
    "stdlib": stdlib_logger,
    "structlog": structlog_logger,
    "netrun": netrun_logger,
}


def main(argv: list[str]) -> None:
    """Time one contender over the events and print {"seconds": ..., "events": ...}."""
    contender, sink_path, count_text = argv
    result_stream = sys.stdout
    events = build_events(int(count_text))
    with Path(sink_path).open("w", encoding="utf-8") as sink:
        emit = CONTENDERS[contender](sink)
        started = time.perf_counter()
        for message, fields in events:
            emit(message, fields)
        seconds = time.perf_counter() - started
        sys.stdout = result_stream
    print(json.dumps({"contender": contender, "events": len(events), "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1:])
