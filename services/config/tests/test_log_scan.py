"""The scan of the config tests' logs for secret values (conftest.py) finds a value however it
was logged: in an event's text, nested in its fields, in an exception, through the standard
library, inside `capture_logs`, and even when redaction masks it in the written line."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from mainmast.logging import get_logger, register_secret
from mainmast_config._backend import BackendKind
from mainmast_config._testing import ScriptedBackend


def _value() -> str:
    return f"deliberately-leaked-{uuid.uuid4().hex}"


def test_a_value_in_an_event_field_is_found(log_scan: Any) -> None:
    value = _value()
    with log_scan.expected_leak(value) as leak:
        get_logger("leaky").info("connecting", detail={"dsn": [f"postgres://app:{value}@db"]})

    assert any(value in text for text in leak.raw)


def test_a_value_masked_by_redaction_is_found_before_it_is_masked(log_scan: Any) -> None:
    value = _value()
    register_secret(value)
    with log_scan.expected_leak(value) as leak:
        get_logger("leaky").info(f"the password is {value}")

    written = "".join(leak.rendered)
    assert value not in written
    assert "the password is ***" in written
    assert any(value in text for text in leak.raw)


def test_a_value_in_an_exception_or_a_standard_library_record_is_found(log_scan: Any) -> None:
    value = _value()

    def connect() -> None:
        raise RuntimeError(f"cannot connect with {value}")

    with log_scan.expected_leak(value) as leak:
        try:
            connect()
        except RuntimeError:
            get_logger("leaky").exception("connect failed")
    assert any(value in text for text in leak.raw)

    other = _value()
    with log_scan.expected_leak(other) as leak:
        logging.getLogger("leaky.stdlib").warning("token %s", other)
    assert any(other in text for text in leak.raw)


def test_a_value_logged_inside_capture_logs_is_found(log_scan: Any) -> None:
    value = _value()
    with log_scan.expected_leak(value) as leak, capture_logs() as logs:
        get_logger("leaky").info("value", value=value)

    assert logs[0]["value"] == value
    assert any(value in text for text in leak.raw)


async def test_values_a_backend_returned_are_looked_for(log_scan: Any) -> None:
    value = _value()
    record = await ScriptedBackend(BackendKind.FILES, {"db-password": value}).get("db-password")

    assert record.value in log_scan.values
    assert "four" not in log_scan.values  # short values are ordinary words, not looked for
    log_scan.harvest("four")
    assert "four" not in log_scan.values


def test_a_leak_outside_expected_leak_is_reported(log_scan: Any) -> None:
    value = log_scan.secret(_value())
    start = log_scan.mark()
    get_logger("leaky").info("oops", value=value)

    assert list(log_scan.leaks(start)) == [value]
    # Scrubbed by hand, so that this test's own teardown and the session's scan stay green.
    log_scan.values.discard(value)


def test_a_test_that_logs_a_secret_value_fails(tmp_path: Path) -> None:
    # The real conftest around a test that leaks: the run must fail, naming the leak, both
    # in the test's own teardown and in the session's final scan.
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_leaks.py").write_text(
        "from mainmast.logging import get_logger\n"
        "from mainmast_config._backend import BackendKind\n"
        "from mainmast_config._testing import ScriptedBackend\n\n\n"
        "async def test_leaks() -> None:\n"
        "    backend = ScriptedBackend(BackendKind.ENVIRONMENT, {'pw': 'leaked-by-a-bug-42'})\n"
        "    record = await backend.get('pw')\n"
        "    get_logger('careless').info('read', value=record.value)\n"
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stdout[-2000:]
    assert "secret values were logged by this test" in result.stdout
    assert "secret values were logged during the config tests" in result.stdout
    assert "1 passed, 1 error" in result.stdout
