"""Fixtures of the config service's tests: a fake clock, a local Key Vault, a real auth service
with callers of every kind, a config service factory, and the scan of every log line for the
secret values the tests used.

The log scan: each test runs with `mainmast.logging` configured to write into memory, and
three taps record what the process tried to log *before* redaction (which would otherwise
hide a leak of a value the client registered): the first structlog processor, a handler on
the standard library's root logger, and structlog's `capture_logs` (which replaces the
processors while it is active). The rendered lines are kept too. Every secret value a test
declares (`log_scan.secret(...)`) and every value a backend returned (each `SecretRecord`
made, from 8 characters on, shorter ones being ordinary words) is looked for in all of it:
after each test in what that test logged, and at the end of the session in everything.
`log_scan.expected_leak(value)` is the one way to log a value on purpose, for the tests
that prove the scan and the redaction work.
"""

from __future__ import annotations

import asyncio
import io
import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio
import structlog
import structlog.testing
from pydantic import SecretStr
from structlog.typing import EventDict, WrappedLogger

from mainmast.auth import AuthClient, AuthClientConfig
from mainmast.logging import configure_logging, reset_logging
from mainmast.runtime import ServiceServer
from mainmast_auth.service import AuthService
from mainmast_auth.settings import AuthSettings
from mainmast_auth.testing import grant_platform_admin, seed_tenant
from mainmast_config._backend import SecretBackend, SecretRecord
from mainmast_config._local_key_vault import LocalKeyVault
from mainmast_config._testing import (
    Callers,
    FakeClock,
    RunningConfig,
    VaultCredential,
    serve_config_service,
)
from mainmast_config.settings import ConfigSettings

HARVEST_MIN_LENGTH: Final = 8
"""Values a backend returned are scanned for from this length on."""

PASSWORD: Final = "correct horse battery staple"
ACME: Final = "tenants/acme"
GLOBEX: Final = "tenants/globex"


# -- the log scan -----------------------------------------------------------------------


def _texts(value: object) -> Iterator[str]:
    """Every leaf of a log event as text, the way a renderer would turn it into text."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, BaseException):
        yield "".join(traceback.format_exception(value))
    else:
        yield str(value)


@dataclass
class Leak:
    """What was recorded while a value was logged on purpose."""

    raw: list[str] = field(default_factory=list)
    """The texts recorded before redaction."""
    rendered: list[str] = field(default_factory=list)
    """The lines as written out, after redaction."""


class LogScan:
    """Everything logged during the config tests, and the secret values it must not contain."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        """The values looked for."""
        self.raw: list[str] = []
        """Texts of every event before redaction."""
        self.rendered: list[str] = []
        """Every line written out."""

    def secret(self, value: str) -> str:
        """Declare `value` a secret of a test; returns it."""
        self.values.add(value)
        return value

    def harvest(self, value: str) -> None:
        """A value a backend returned: a secret from `HARVEST_MIN_LENGTH` characters on."""
        if len(value) >= HARVEST_MIN_LENGTH:
            self.values.add(value)

    def mark(self) -> tuple[int, int]:
        """Where the records stand now."""
        return len(self.raw), len(self.rendered)

    def leaks(self, since: tuple[int, int] = (0, 0)) -> dict[str, list[str]]:
        """Each value found in what was recorded since `since`, with the texts it is in."""
        texts = self.raw[since[0] :] + self.rendered[since[1] :]
        found: dict[str, list[str]] = {}
        for value in sorted(self.values):
            hits = [text for text in texts if value in text]
            if hits:
                found[value] = [hit[:300] for hit in hits[:3]]
        return found

    @contextmanager
    def expected_leak(self, value: str) -> Iterator[Leak]:
        """Log `value` on purpose inside the block; the scan must have seen it, and it is
        then scrubbed from the records, so that the scan of the session stays meaningful."""
        self.secret(value)
        start_raw, start_rendered = self.mark()
        leak = Leak()
        yield leak
        leak.raw = self.raw[start_raw:]
        leak.rendered = self.rendered[start_rendered:]
        assert self.leaks((start_raw, start_rendered)).get(value), (
            "the log scan did not see a value logged on purpose"
        )
        scrubbed = "<expected leak>"
        self.raw[start_raw:] = [text.replace(value, scrubbed) for text in leak.raw]
        self.rendered[start_rendered:] = [text.replace(value, scrubbed) for text in leak.rendered]

    # The taps.

    def record_event(
        self, logger: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> EventDict:
        """A structlog processor, first in the chain: the event before anything changes it."""
        self.raw.append("\n".join(_texts(event_dict)))
        if event_dict.get("exc_info") is True:
            self.raw.append(traceback.format_exc())
        return event_dict

    @contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """Route every log line of the block through the taps."""
        scan = self

        class Sink(io.StringIO):
            def write(self, text: str) -> int:
                scan.rendered.append(text)
                return len(text)

        class RawHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                scan.raw.append(record.getMessage())
                if record.exc_info:
                    scan.raw.append("".join(traceback.format_exception(*record.exc_info)))

        original_capture = structlog.testing.LogCapture.__call__

        def capture(
            capture_self: structlog.testing.LogCapture,
            logger: WrappedLogger,
            method_name: str,
            event_dict: EventDict,
        ) -> Any:
            scan.record_event(logger, method_name, event_dict)
            return original_capture(capture_self, logger, method_name, event_dict)

        original_init = SecretRecord.__init__

        def harvesting_init(record: SecretRecord, *args: Any, **kwargs: Any) -> None:
            original_init(record, *args, **kwargs)
            scan.harvest(record.value)

        monkeypatch.setattr(structlog.testing.LogCapture, "__call__", capture)
        monkeypatch.setattr(SecretRecord, "__init__", harvesting_init)
        configure_logging(level="DEBUG", json=True, stream=Sink())
        processors = structlog.get_config()["processors"]
        structlog.configure(processors=[self.record_event, *processors])
        raw_handler = RawHandler(level=logging.DEBUG)
        logging.getLogger().addHandler(raw_handler)
        try:
            yield
        finally:
            logging.getLogger().removeHandler(raw_handler)
            reset_logging()


@pytest.fixture(scope="session")
def log_scan() -> Iterator[LogScan]:
    """The scan of the session; at its end no secret value may be in anything logged."""
    scan = LogScan()
    yield scan
    leaks = scan.leaks()
    assert not leaks, f"secret values were logged during the config tests: {leaks}"


@pytest.fixture(autouse=True)
def _scanned_logs(log_scan: LogScan, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    start = log_scan.mark()
    with log_scan.installed(monkeypatch):
        yield
    leaks = log_scan.leaks(start)
    assert not leaks, f"secret values were logged by this test: {leaks}"


# -- the config core's fakes --------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    """A clock that stands still until advanced."""
    return FakeClock()


@pytest.fixture
async def vault() -> AsyncIterator[LocalKeyVault]:
    """A running local Key Vault with two secrets a listing page, stopped after the test."""
    with LocalKeyVault(page_size=2) as local_vault:
        yield local_vault
    # Stopping cut the vault's connections; a few turns of the loop let the clients' TLS
    # transports see that and close, before the loop itself closes.
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
def local_vault() -> Iterator[LocalKeyVault]:
    """A running local Key Vault, for tests on the session's event loop (which outlives the
    vault's client connections, so nothing needs to wait for them to close)."""
    with LocalKeyVault() as local:
        yield local


@pytest.fixture
def credential() -> VaultCredential:
    """A credential the local vault accepts."""
    return VaultCredential()


# -- a real auth service and its callers --------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def callers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Callers]:
    """One auth service for the session, with a platform admin, a service account, a member
    and a member of another tenant; the tests that use it run in the session's loop."""
    folder = tmp_path_factory.mktemp("auth")
    service = AuthService(
        AuthSettings(
            listen="127.0.0.1:0",
            metrics_listen="",
            database_url=SecretStr(f"sqlite+aiosqlite:///{folder / 'auth.db'}"),
            signing_key_encryption_key_file=folder / "sealing.key",
        )
    )
    async with ServiceServer(service) as server:
        await seed_tenant(service.database, ACME, "olga", password=PASSWORD, role="owner")
        await seed_tenant(service.database, ACME, "root", "mia", password=PASSWORD)
        await seed_tenant(service.database, GLOBEX, "gus", password=PASSWORD)
        await grant_platform_admin(service.database, f"{ACME}/users/root")
        # Seeded straight into the database: the service applies it at its next policy poll,
        # or now.
        await service.policy.refresh()
        target = f"127.0.0.1:{server.port}"
        async with AuthClient(config=AuthClientConfig(target=target)) as auth:
            owner = (await auth.login(ACME, "olga", PASSWORD)).access_token
            account = await auth.create_service_account(ACME, "payments-api", bearer_token=owner)
            client_id = account.service_account.client_id
            payments = await auth.client_credentials(client_id, account.client_secret)
            yield Callers(
                target=target,
                auth=auth,
                admin=(await auth.login(ACME, "root", PASSWORD)).access_token,
                payments=payments.access_token,
                member=(await auth.login(ACME, "mia", PASSWORD)).access_token,
                outsider=(await auth.login(GLOBEX, "gus", PASSWORD)).access_token,
                payments_client_id=client_id,
                payments_client_secret=account.client_secret,
            )


# -- the config service ------------------------------------------------------------------


ServeConfig = Callable[..., AbstractAsyncContextManager[RunningConfig]]


@pytest.fixture
def serve_config(tmp_path: Path) -> ServeConfig:
    """Start a config service: `async with serve_config(sources=[...], policy="...",
    auth_target=..., **settings) as running:`. `sources` replaces the backends the settings
    describe; `policy` is the text of its policy file."""

    def serve(
        *,
        sources: Sequence[SecretBackend] | None = None,
        policy: str | None = None,
        key_vault_credential: VaultCredential | None = None,
        **settings: Any,
    ) -> AbstractAsyncContextManager[RunningConfig]:
        if policy is not None:
            policy_file = tmp_path / f"policy-{uuid.uuid4().hex}.yaml"
            policy_file.write_text(policy)
            settings.setdefault("access_policy_file", policy_file)
        settings.setdefault("dotenv_path", tmp_path / "no.env")
        return serve_config_service(
            ConfigSettings(**{"listen": "127.0.0.1:0", "metrics_listen": "", **settings}),
            backends=sources,
            key_vault_credential=key_vault_credential,
        )

    return serve
