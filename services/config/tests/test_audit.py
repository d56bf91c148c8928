"""Audit records: every access logged with who, what, how it was answered, and never the value."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from mainmast.errors import MainmastError, NotFoundError, UnavailableError
from mainmast.logging import bound_context
from mainmast_config._audit import (
    AUDIT_EVENT,
    AccessAuditor,
    AccessDecision,
    AccessKind,
    AuditRecord,
)
from mainmast_config._backend import BackendKind, digest_version
from mainmast_config._cache import CacheOptions, CacheState, SecretCache
from mainmast_config._chain import BackendChain
from mainmast_config._errors import backend_unavailable
from mainmast_config._testing import FakeClock, ScriptedBackend

SECRETS = {"payments/stripe-key": "sk_live_9f8e7d6c5b4a", "database-password": "pg-Pa55-w0rd!"}
FIELDS = (
    "caller",
    "tenant",
    "kind",
    "name",
    "decision",
    "version",
    "backend",
    "cache_state",
    "error_reason",
    "request_id",
)


def _audit_events(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [event for event in logs if event["event"] == AUDIT_EVENT]


def _fields(event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {key: event[key] for key in FIELDS}


async def _read(
    cache: SecretCache, auditor: AccessAuditor, name: str, *, caller: str, allowed: bool
) -> None:
    # What a servicer does per name: decide, read through the cache, audit either way.
    if not allowed:
        auditor.denied(caller=caller, tenant="acme", name=name)
        return
    try:
        answer = await cache.get(name)
    except MainmastError as exc:
        auditor.failed(caller=caller, tenant="acme", name=name, error=exc)
        return
    auditor.allowed(caller=caller, tenant="acme", name=name, answer=answer)


async def test_reads_through_cache_and_chain_are_audited_field_by_field_and_without_values(
    clock: FakeClock,
) -> None:
    files = ScriptedBackend(BackendKind.FILES, {"database-password": SECRETS["database-password"]})
    vault = ScriptedBackend(
        BackendKind.KEY_VAULT, {"payments/stripe-key": SECRETS["payments/stripe-key"]}
    )
    cache = SecretCache(
        BackendChain([vault, files], clock=clock),
        CacheOptions(ttl=60.0, error_retry_interval=0.0),
        clock=clock,
        wall_clock=clock.wall,
    )
    with capture_logs() as logs:
        auditor = AccessAuditor()
        with bound_context(request_id="req-1"):
            await _read(cache, auditor, "payments/stripe-key", caller="payments-api", allowed=True)
            await _read(cache, auditor, "payments/stripe-key", caller="payments-api", allowed=True)
        with bound_context(request_id="req-2"):
            await _read(cache, auditor, "database-password", caller="payments-api", allowed=False)
            await _read(cache, auditor, "database-password", caller="orders-api", allowed=True)
            await _read(cache, auditor, "missing", caller="orders-api", allowed=True)
        clock.advance(61)
        vault.fail_next(backend_unavailable("KEY_VAULT", "connection refused"))
        await _read(cache, auditor, "payments/stripe-key", caller="payments-api", allowed=True)
        vault.fail_next(backend_unavailable("KEY_VAULT", "connection refused"))
        await _read(cache, auditor, "orders/api-key", caller="orders-api", allowed=True)

    stripe = digest_version(SECRETS["payments/stripe-key"])
    database = digest_version(SECRETS["database-password"])
    pay, orders = "payments-api", "orders-api"
    key, pw = "payments/stripe-key", "database-password"
    expected = [
        (pay, key, "allowed", stripe, "KEY_VAULT", "MISS", "", "req-1"),
        (pay, key, "allowed", stripe, "KEY_VAULT", "HIT", "", "req-1"),
        (pay, pw, "denied", "", None, None, "", "req-2"),
        (orders, pw, "allowed", database, "FILES", "MISS", "", "req-2"),
        (orders, "missing", "allowed", "", None, None, "SECRET_NOT_FOUND", "req-2"),
        (pay, key, "allowed", stripe, "KEY_VAULT", "STALE_IF_ERROR", "", None),
        (orders, "orders/api-key", "allowed", "", None, None, "BACKEND_UNAVAILABLE", None),
    ]
    events = _audit_events(logs)
    assert [
        tuple(event[field] for field in FIELDS if field not in {"tenant", "kind"})
        for event in events
    ] == expected
    assert {(event["tenant"], event["kind"]) for event in events} == {("acme", "secret")}
    assert [event["log_level"] for event in events] == [
        "info", "info", "warning", "info", "info", "info", "info"
    ]  # fmt: skip
    # Nothing anyone logged during these reads (cache, chain, audit) carries a value.
    assert logs
    for event in logs:
        for value in SECRETS.values():
            assert value not in repr(event)


def test_a_record_has_no_field_a_value_could_travel_in() -> None:
    assert set(AuditRecord.__dataclass_fields__) == set(FIELDS)
    record = AuditRecord(
        caller="svc", tenant="t", kind=AccessKind.SETTING, name="n", decision=AccessDecision.DENIED
    )
    assert record.fields() == {
        "caller": "svc",
        "tenant": "t",
        "kind": "setting",
        "name": "n",
        "decision": "denied",
        "version": "",
        "backend": None,
        "cache_state": None,
        "error_reason": "",
        "request_id": None,
    }


@pytest.mark.parametrize(
    "error",
    [NotFoundError("Secret", "x"), UnavailableError("Backend down.")],
)
def test_a_failed_read_is_audited_with_its_reason_only(error: MainmastError) -> None:
    with capture_logs() as logs:
        record = AccessAuditor().failed(
            caller="svc", tenant="t", name="x", error=error, kind=AccessKind.SETTING
        )
    assert record.error_reason == error.reason
    assert (record.decision, record.version, record.cache_state) == (
        AccessDecision.ALLOWED,
        "",
        None,
    )
    assert _fields(_audit_events(logs)[0])["error_reason"] == error.reason
    assert "message" not in logs[0]


async def test_a_read_past_the_cache_is_audited_without_a_cache_state() -> None:
    backend = ScriptedBackend(BackendKind.ENVIRONMENT, {"api-key": "k-1234567890"})
    record = await backend.get("api-key")
    with capture_logs() as logs:
        audited = AccessAuditor().allowed(caller="svc", tenant="t", name="api-key", answer=record)
    assert (audited.version, audited.backend, audited.cache_state) == (
        record.version,
        BackendKind.ENVIRONMENT,
        None,
    )
    assert "k-1234567890" not in repr(logs)
    assert CacheState.HIT not in logs[0].values()


def test_a_listing_is_audited_with_its_prefix_and_any_failure() -> None:
    with capture_logs() as logs:
        auditor = AccessAuditor()
        listed = auditor.listed(caller="svc", tenant="t", name_prefix="payments/")
        failed = auditor.listed(
            caller="svc", tenant="t", name_prefix="", error=UnavailableError("Backend down.")
        )

    assert (listed.kind, listed.name, listed.decision, listed.error_reason) == (
        AccessKind.SECRET_LIST,
        "payments/",
        AccessDecision.ALLOWED,
        "",
    )
    assert failed.error_reason == "UNAVAILABLE"
    assert [event["kind"] for event in _audit_events(logs)] == ["secret-list", "secret-list"]
