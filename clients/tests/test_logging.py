"""mainmast.logging: setup, rendering, context on every line, redaction of what is written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import string
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from mainmast._log_pipeline import LineHandler
from mainmast.logging import (
    CONTEXT_KEYS,
    MASK,
    SecretRegistry,
    bind_context,
    bound_context,
    configure_logging,
    get_logger,
    register_secret,
    reset_logging,
    unbind_context,
    uvicorn_log_config,
)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    # Logging is process-wide: every test starts from, and leaves behind, no configuration.
    reset_logging()
    yield
    reset_logging()


class TerminalStream(io.StringIO):
    """A stream that says it is an interactive terminal."""

    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, LineHandler)]


# -- setup and rendering ------------------------------------------------------------------------


def test_configure_logging_works_with_no_arguments_and_writes_json_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging()
    get_logger("svc").info("started", port=50051)
    [line] = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["event"] == "started"
    assert record["port"] == 50051
    assert record["logger"] == "svc"
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")


def test_a_terminal_gets_readable_console_lines_instead_of_json() -> None:
    stream = TerminalStream()
    configure_logging(stream=stream)
    get_logger("svc").info("started", port=50051)
    line = stream.getvalue()
    assert not line.startswith("{")
    assert "started" in line
    assert "port" in line
    assert "50051" in line


@pytest.mark.parametrize(
    ("stream_type", "json_option", "expect_json"),
    [
        (io.StringIO, None, True),
        (TerminalStream, None, False),
        (TerminalStream, True, True),
        (io.StringIO, False, False),
    ],
)
def test_the_json_option_overrides_the_terminal_check(
    stream_type: type[io.StringIO], json_option: bool | None, expect_json: bool
) -> None:
    stream = stream_type()
    configure_logging(stream=stream, json=json_option)
    get_logger("svc").info("hello")
    assert stream.getvalue().startswith("{") is expect_json


def test_console_lines_on_a_non_terminal_have_no_colour_codes() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, json=False)
    get_logger("svc").warning("careful", password="pw-1")
    assert "\x1b[" not in stream.getvalue()
    assert f"password={MASK}" in stream.getvalue()


def test_configuring_again_replaces_the_setup_without_adding_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second, level="WARNING")
    configure_logging(stream=second, level="WARNING")
    assert len(our_handlers()) == 1
    get_logger("svc").info("dropped")
    get_logger("svc").warning("kept")
    logging.getLogger("lib").warning("kept too")
    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["kept", "kept too"]


def test_a_logger_made_before_configuration_follows_the_later_configuration() -> None:
    early = get_logger("early")
    stream = io.StringIO()
    configure_logging(stream=stream)
    early.info("after")
    assert json_lines(stream)[0]["event"] == "after"


def test_capture_logs_sees_events_of_loggers_already_in_use() -> None:
    configure_logging(stream=io.StringIO())
    log = get_logger("svc")
    log.info("before")
    with capture_logs() as captured:
        log.info("captured", user_id=7)
    assert captured == [{"event": "captured", "user_id": 7, "log_level": "info"}]


def test_a_logger_without_a_name_writes_no_logger_key() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    get_logger().info("anonymous")
    assert "logger" not in json_lines(stream)[0]


@pytest.mark.parametrize("level", ["debug", "DEBUG", 10, " Debug "])
def test_level_names_and_numbers_are_both_accepted(level: str | int) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level=level)
    get_logger("svc").debug("visible")
    logging.getLogger("lib").debug("visible too")
    assert len(json_lines(stream)) == 2


def test_the_level_filters_structlog_and_standard_library_lines_alike() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level="ERROR")
    get_logger("svc").warning("no")
    logging.getLogger("lib").warning("no")
    get_logger("svc").error("yes")
    logging.getLogger("lib").error("yes")
    assert [line["event"] for line in json_lines(stream)] == ["yes", "yes"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"level": "LOUD"}, ValueError, "unknown log level"),
        ({"level": -1}, ValueError, "negative"),
        ({"level": True}, TypeError, "level"),
        ({"level": 1.5}, TypeError, "level"),
        ({"stream": object()}, TypeError, "write"),
        ({"json": "yes"}, TypeError, "json"),
        ({"allow_keys": "token"}, TypeError, "collection"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_error(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        configure_logging(**kwargs)


def test_a_record_that_cannot_be_formatted_becomes_a_redacted_notice_not_a_stderr_dump(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    # Straight to our handler: pytest's own capturing handler raises on such records.
    [handler] = our_handlers()
    handler.handle(
        logging.LogRecord(
            "lib", logging.ERROR, __file__, 1, "%d for password=%s", ("many", "hunter2"), None
        )
    )
    [notice] = json_lines(stream)
    assert notice["event"].startswith("a log record could not be written: TypeError")
    assert notice["logger"] == "lib"
    assert "hunter2" not in stream.getvalue()
    assert capsys.readouterr().err == ""


def test_integers_beyond_64_bits_are_still_rendered() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    get_logger("svc").info("big", n=2**70)
    assert json_lines(stream)[0]["n"] == 2**70


def test_reset_restores_the_standard_library_as_it_was() -> None:
    root = logging.getLogger()
    uvicorn_logger = logging.getLogger("uvicorn")
    own_handler = logging.NullHandler()
    uvicorn_logger.addHandler(own_handler)
    uvicorn_logger.propagate = False
    level_before, handlers_before = root.level, list(root.handlers)
    try:
        configure_logging(stream=io.StringIO(), level="DEBUG")
        assert uvicorn_logger.handlers == []
        assert uvicorn_logger.propagate
        reset_logging()
        assert root.level == level_before
        assert root.handlers == handlers_before
        assert uvicorn_logger.handlers == [own_handler]
        assert not uvicorn_logger.propagate
    finally:
        uvicorn_logger.removeHandler(own_handler)
        uvicorn_logger.propagate = True


def test_lines_written_from_many_threads_never_interleave() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    log, stdlib_log = get_logger("svc"), logging.getLogger("lib")

    def write_lines(worker: int) -> None:
        for n in range(200):
            log.info("structlog line", worker=worker, n=n, padding="x" * 200)
            stdlib_log.info("stdlib line %d %d %s", worker, n, "y" * 200)

    threads = [threading.Thread(target=write_lines, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(json_lines(stream)) == 4 * 200 * 2


# -- context ------------------------------------------------------------------------------------

CONTEXT = {"request_id": "req-1", "tenant": "acme", "subject": "user-7"}


def test_bound_context_is_on_structlog_stdlib_grpc_and_uvicorn_lines() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    bind_context(**CONTEXT)
    get_logger("svc").info("structlog")
    logging.getLogger("app.module").info("stdlib")
    logging.getLogger("grpc._server").warning("grpc")
    logging.getLogger("uvicorn.error").info("uvicorn")
    lines = json_lines(stream)
    assert [line["event"] for line in lines] == ["structlog", "stdlib", "grpc", "uvicorn"]
    assert [line["logger"] for line in lines] == [
        "svc",
        "app.module",
        "grpc._server",
        "uvicorn.error",
    ]
    for line in lines:
        assert {key: line[key] for key in CONTEXT} == CONTEXT


def test_the_standard_context_keys_are_named_once() -> None:
    assert CONTEXT_KEYS == ("request_id", "trace_id", "span_id", "tenant", "subject")


def test_unbind_context_removes_keys_and_ignores_unknown_ones() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    bind_context(**CONTEXT)
    unbind_context("tenant", "subject", "never_bound")
    get_logger("svc").info("after")
    line = json_lines(stream)[0]
    assert line["request_id"] == "req-1"
    assert "tenant" not in line
    assert "subject" not in line


def test_bound_context_restores_the_previous_values_on_exit() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    bind_context(request_id="outer")
    with bound_context(request_id="inner", tenant="acme"):
        get_logger("svc").info("inside")
    get_logger("svc").info("outside")
    inside, outside = json_lines(stream)
    assert (inside["request_id"], inside["tenant"]) == ("inner", "acme")
    assert outside["request_id"] == "outer"
    assert "tenant" not in outside


async def test_context_bound_in_one_task_stays_in_that_task() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)

    async def handle(request_id: str) -> None:
        bind_context(request_id=request_id)
        await asyncio.sleep(0)
        get_logger("svc").info("handled", expected=request_id)
        logging.getLogger("lib").info("handled %s", request_id, extra={"expected": request_id})

    await asyncio.gather(*(handle(f"req-{n}") for n in range(5)))
    lines = json_lines(stream)
    assert len(lines) == 10
    for line in lines:
        assert line["request_id"] == line["expected"]


def test_trace_and_span_ids_come_from_the_current_opentelemetry_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    stream = io.StringIO()
    configure_logging(stream=stream)
    with tracer.start_as_current_span("operation") as span:
        get_logger("svc").info("in span")
        logging.getLogger("lib").info("stdlib in span")
    get_logger("svc").info("after span")
    provider.shutdown()

    span_context = span.get_span_context()
    in_span, stdlib_in_span, after_span = json_lines(stream)
    for line in (in_span, stdlib_in_span):
        assert line["trace_id"] == format(span_context.trace_id, "032x")
        assert line["span_id"] == format(span_context.span_id, "016x")
    assert "trace_id" not in after_span
    assert "span_id" not in after_span
    [finished] = exporter.get_finished_spans()
    assert finished.context.trace_id == span_context.trace_id


def test_explicitly_bound_trace_ids_win_over_the_current_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    stream = io.StringIO()
    configure_logging(stream=stream)
    with tracer.start_as_current_span("operation"), bound_context(trace_id="f" * 32):
        get_logger("svc").info("bound")
    line = json_lines(stream)[0]
    assert line["trace_id"] == "f" * 32
    assert len(line["span_id"]) == 16


# -- redaction of what is written ---------------------------------------------------------------


def test_a_secret_registered_before_configuration_is_masked_after_it() -> None:
    register_secret("early-secret-1")
    stream = io.StringIO()
    configure_logging(stream=stream)
    register_secret("late-secret-22")
    get_logger("svc").info("values early-secret-1 and late-secret-22")
    assert json_lines(stream)[0]["event"] == f"values {MASK} and {MASK}"


def test_a_registry_passed_in_takes_over_and_keeps_earlier_secrets() -> None:
    register_secret("early-secret-1")
    registry = SecretRegistry()
    stream = io.StringIO()
    configure_logging(stream=stream, secrets=registry)
    register_secret("late-secret-22")
    get_logger("svc").info("values early-secret-1 and late-secret-22")
    assert json_lines(stream)[0]["event"] == f"values {MASK} and {MASK}"
    assert len(registry) >= 2


def test_credentials_are_masked_on_every_path_to_the_output() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    get_logger("svc").info(
        "connect",
        dsn="postgresql://app:pw@db/app",
        config={"db": {"password": "pw"}, "max_tokens": 5},
        header="Bearer abc.def.ghi",
    )
    logging.getLogger("vendor.dbdriver").info(
        "connect to %s", "postgresql://app:pw@db/app", extra={"api_key": "k-1"}
    )
    structlog_line, stdlib_line = json_lines(stream)
    assert structlog_line["dsn"] == MASK
    assert structlog_line["config"] == {"db": {"password": MASK}, "max_tokens": 5}
    assert structlog_line["header"] == f"Bearer {MASK}"
    assert stdlib_line["event"] == f"connect to postgresql://app:{MASK}@db/app"
    assert stdlib_line["api_key"] == MASK


def test_allow_keys_keeps_named_values_visible() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, allow_keys=["token_hint"])
    get_logger("svc").info("x", token_hint="last four: 1234", token="t")
    line = json_lines(stream)[0]
    assert (line["token_hint"], line["token"]) == ("last four: 1234", MASK)


def test_exception_text_is_redacted_on_structlog_and_stdlib_lines() -> None:
    register_secret("exc-secret-1")
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        fail_with(RuntimeError("failed with exc-secret-1 and password=hunter2"))
    except RuntimeError:
        get_logger("svc").exception("structlog failure")
        logging.getLogger("lib").exception("stdlib failure")
    for line in json_lines(stream):
        assert "RuntimeError: failed with" in line["exception"]
        assert "exc-secret-1" not in line["exception"]
        assert "hunter2" not in line["exception"]


# -- uvicorn ------------------------------------------------------------------------------------


def test_uvicorn_loggers_configured_before_us_are_routed_through_us() -> None:
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    stream = io.StringIO()
    configure_logging(stream=stream)
    bind_context(request_id="req-9")
    logging.getLogger("uvicorn.error").info("Started server process", extra={"color_message": "c"})
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/x?access_token=abc", "1.1", 200
    )
    error_line, access_line = json_lines(stream)
    assert error_line["request_id"] == access_line["request_id"] == "req-9"
    assert "color_message" not in error_line
    assert access_line["event"] == f'127.0.0.1:5 - "GET /x?access_token={MASK} HTTP/1.1" 200'


def test_uvicorn_log_config_keeps_uvicorn_lines_on_our_handler() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.config.dictConfig(uvicorn_log_config("INFO"))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate
    logging.getLogger("uvicorn.access").info("access line")
    assert json_lines(stream)[0]["logger"] == "uvicorn.access"


async def test_a_real_uvicorn_server_logs_through_us() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"pong"})

    stream = io.StringIO()
    configure_logging(stream=stream)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=uvicorn_log_config(), use_colors=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/ping?access_token=abc123")
        assert response.text == "pong"
    finally:
        server.should_exit = True
        await serving
    lines = json_lines(stream)
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
    access = next(line for line in lines if line["logger"] == "uvicorn.access")
    assert f"/ping?access_token={MASK}" in access["event"]
    assert "abc123" not in stream.getvalue()


# -- a registered secret never reaches the output -----------------------------------------------

SECRET_ALPHABET = string.ascii_letters + string.digits + "-_.!@#$%^&+~:;,?/|<>()[]{}"


class Holder:
    """An object whose repr shows what it holds."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Holder(value={self.value!r})"


def fail_with(error: Exception) -> None:
    raise error


def write_with_secret(embedded: str, path: str) -> None:
    log = get_logger("svc")
    if path == "message":
        log.info(embedded)
    elif path == "nested value":
        log.info("event", data={"items": [("x", {"deep": [embedded]})]})
    elif path == "key":
        log.info("event", data={embedded: 1})
    elif path == "repr":
        log.info("event", holder=Holder(embedded))
    elif path == "exception":
        try:
            fail_with(ValueError(embedded))
        except ValueError:
            log.exception("failed")
    elif path == "stdlib message":
        logging.getLogger("lib").warning("value %s", embedded)
    elif path == "stdlib extra":
        logging.getLogger("lib").warning("value", extra={"payload": [embedded]})
    else:
        try:
            fail_with(KeyError(embedded))
        except KeyError:
            logging.getLogger("lib").exception("stdlib failed")


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    secret=st.text(alphabet=SECRET_ALPHABET, min_size=8, max_size=40),
    prefix=st.text(max_size=12),
    suffix=st.text(max_size=12),
    path=st.sampled_from(
        [
            "message",
            "nested value",
            "key",
            "repr",
            "exception",
            "stdlib message",
            "stdlib extra",
            "stdlib exception",
        ]
    ),
    json_output=st.booleans(),
    register_first=st.booleans(),
)
def test_a_registered_secret_never_appears_in_the_rendered_output(
    *,
    secret: str,
    prefix: str,
    suffix: str,
    path: str,
    json_output: bool,
    register_first: bool,
) -> None:
    # The autouse fixture resets around the whole test; each example resets for itself.
    reset_logging()
    stream = io.StringIO()
    if register_first:
        register_secret(secret)
    configure_logging(stream=stream, json=json_output)
    if not register_first:
        register_secret(secret)
    write_with_secret(f"{prefix}{secret}{suffix}", path)
    output = stream.getvalue()
    assert output
    assert secret not in output


def test_structlog_stays_usable_after_reset() -> None:
    configure_logging(stream=io.StringIO())
    reset_logging()
    assert not structlog.is_configured()


def test_the_public_names_are_pinned() -> None:
    import mainmast.logging  # noqa: PLC0415 - the module itself is under test here

    assert mainmast.logging.__all__ == sorted(mainmast.logging.__all__)
    assert mainmast.logging.__all__ == [
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


def test_driver_lines_that_echo_statement_parameters_never_reach_the_output() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level="DEBUG")

    logging.getLogger("aiosqlite").debug("executing %s", ("SELECT ?", ("$argon2id$v=19$hash",)))
    logging.getLogger("aiosqlite").warning("database is locked")
    logging.getLogger("vendor.dbdriver").debug("kept")

    output = stream.getvalue()
    assert "argon2id" not in output
    assert "database is locked" in output
    assert "kept" in output


async def _one_httpx_request() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="ok"))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://provider.invalid/v1/models")


async def test_http_clients_write_no_line_per_request_but_still_their_warnings() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, json=True)

    await _one_httpx_request()
    logging.getLogger("httpcore.connection").warning("connection trouble")

    assert [line["event"] for line in json_lines(stream)] == ["connection trouble"]


async def test_at_debug_http_clients_write_every_request() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, json=True, level="DEBUG")

    await _one_httpx_request()

    assert any(line["event"].startswith("HTTP Request: GET") for line in json_lines(stream))


def test_a_level_above_warning_holds_http_clients_to_it_too() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level="ERROR")

    logging.getLogger("httpx").warning("not at ERROR")

    assert stream.getvalue() == ""


def test_reset_gives_http_clients_their_own_levels_back() -> None:
    logging.getLogger("httpx").setLevel(logging.INFO)
    try:
        configure_logging(stream=io.StringIO())
        configure_logging(stream=io.StringIO(), level="DEBUG")
        assert logging.getLogger("httpx").level == logging.NOTSET
        reset_logging()
        assert logging.getLogger("httpx").level == logging.INFO
    finally:
        logging.getLogger("httpx").setLevel(logging.NOTSET)
