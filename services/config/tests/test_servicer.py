"""The config service over real gRPC, with callers authenticated by a real auth service: the
access policy per pattern, subject, role and tenant; denials that say nothing of existence
and ask no backend; each method; the audit; and the vault going down under a cache and a
watch stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from structlog.testing import capture_logs

from mainmast.config.v1 import config_service_pb2 as pb
from mainmast.config.v1 import resources_pb2
from mainmast.errors import MainmastError, translate_rpc_errors
from mainmast_config._audit import AUDIT_EVENT
from mainmast_config._backend import BackendKind, digest_version
from mainmast_config._local_key_vault import LocalKeyVault
from mainmast_config._testing import (
    Callers,
    RunningConfig,
    ScriptedBackend,
    VaultCredential,
    bearer_metadata,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

ServeConfig = Callable[..., Any]

POLICY = """\
rules:
  - description: the payments API reads its own secrets and settings
    subjects: [tenants/acme/serviceAccounts/payments-api]
    secrets: ["payments/*"]
    settings: ["payments.*"]
  - description: members of acme read what acme shares
    roles: ["tenants/*/roles/member"]
    tenants: [tenants/acme]
    secrets: ["shared/**"]
    settings: ["shared.*"]
  - roles: [roles/platform-admin]
    secrets: ["**"]
    settings: ["**"]
"""

STRIPE = "sk_live_servicer_4f1d8c2b"
STRIPE_EU = "sk_live_servicer_eu_77a0"
ORDERS_DB = "orders-db-servicer-Pa55"
SMTP = "smtp-servicer-secret-9931"
VALUES = {
    "payments/stripe-key": STRIPE,
    "payments/eu/stripe-key": STRIPE_EU,
    "orders/db-password": ORDERS_DB,
    "shared/mail/smtp-password": SMTP,
    "settings/payments.retries": "3",
    "settings/payments.enabled": "yes",
    "settings/payments.timeout": "twelve",
    "settings/shared.region": "eu-west",
    "settings/shared.flags": '{"beta": true, "limits": [1, 2]}',
}


@pytest.fixture
def backend(log_scan: Any) -> ScriptedBackend:
    for value in (STRIPE, STRIPE_EU, ORDERS_DB, SMTP):
        log_scan.secret(value)
    return ScriptedBackend(BackendKind.ENVIRONMENT, VALUES)


def _serve(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend, **settings: Any
) -> Any:
    settings.setdefault("policy", POLICY)
    return serve_config(sources=[backend], auth_target=callers.target, **settings)


def _serve_vault(
    serve_config: ServeConfig, callers: Callers, local_vault: LocalKeyVault, **settings: Any
) -> Any:
    """A service whose only backend is the local vault, configured through the settings;
    connection failures are not retried, so an outage shows at once."""
    return serve_config(
        auth_target=callers.target,
        key_vault_credential=VaultCredential(),
        backends="key_vault",
        key_vault_url=local_vault.url,
        key_vault_ca_bundle=Path(local_vault.ca_path),
        key_vault_verify_challenge_resource=False,
        key_vault_retry_connect=0,
        key_vault_retry_backoff_seconds=0,
        **settings,
    )


async def _error(call: Awaitable[Any]) -> MainmastError:
    with pytest.raises(MainmastError) as raised:
        async with translate_rpc_errors():
            await call
    return raised.value


async def _get(running: RunningConfig, token: str, name: str, version: str = "") -> Any:
    request = pb.GetSecretRequest(name=name, version=version)
    return (await running.stub.GetSecret(request, metadata=bearer_metadata(token))).secret


async def _bounded(condition: Callable[[], Coroutine[Any, Any, bool]]) -> None:
    """Wait until `condition()` holds, checking every 20 ms, for at most 30 s."""
    for _ in range(1500):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def test_a_service_account_reads_exactly_the_secrets_its_pattern_grants(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async with _serve(serve_config, callers, backend) as running:
        first = await _get(running, callers.payments, "payments/stripe-key")
        second = await _get(running, callers.payments, "payments/stripe-key")
        nested = await _error(_get(running, callers.payments, "payments/eu/stripe-key"))

    assert (first.name, first.value, first.version) == (
        "payments/stripe-key",
        STRIPE,
        digest_version(STRIPE),
    )
    assert first.backend == resources_pb2.BACKEND_ENVIRONMENT
    assert (first.cache_state, second.cache_state) == (
        resources_pb2.CACHE_STATE_MISS,
        resources_pb2.CACHE_STATE_HIT,
    )
    assert 0 < second.ttl.ToTimedelta().total_seconds() <= 300
    assert second.fetch_time == first.fetch_time
    assert (nested.grpc_code, nested.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SECRET_ACCESS_DENIED",
    )


async def test_a_denial_says_nothing_of_whether_the_name_exists_and_asks_no_backend(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async with _serve(serve_config, callers, backend) as running:
        existing = await _error(_get(running, callers.payments, "orders/db-password"))
        missing = await _error(_get(running, callers.payments, "orders/no-such-secret"))

    assert backend.calls == 0
    for error, name in ((existing, "orders/db-password"), (missing, "orders/no-such-secret")):
        assert (type(error).__name__, error.reason, error.domain) == (
            "PermissionDeniedError",
            "SECRET_ACCESS_DENIED",
            "config.mainmast.dev",
        )
        assert error.metadata == {"name": name}
    assert existing.message.replace("orders/db-password", "N") == missing.message.replace(
        "orders/no-such-secret", "N"
    )


async def test_roles_grant_only_in_the_tenants_the_rule_names(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async with _serve(serve_config, callers, backend) as running:
        member = await _get(running, callers.member, "shared/mail/smtp-password")
        outsider = await _error(_get(running, callers.outsider, "shared/mail/smtp-password"))
        member_other = await _error(_get(running, callers.member, "payments/stripe-key"))

    assert member.value == SMTP
    assert outsider.reason == member_other.reason == "SECRET_ACCESS_DENIED"


async def test_an_allowed_caller_gets_versions_and_honest_not_found_answers(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    version = digest_version(ORDERS_DB)
    async with _serve(serve_config, callers, backend) as running:
        pinned = await _get(running, callers.admin, "orders/db-password", version)
        wrong_version = await _error(_get(running, callers.admin, "orders/db-password", "v0"))
        missing = await _error(_get(running, callers.admin, "orders/no-such-secret"))
        bad_version = await _error(_get(running, callers.admin, "orders/db-password", "a/b"))
        bad_name = await _error(_get(running, callers.admin, "../etc/passwd"))

    assert (pinned.value, pinned.version) == (ORDERS_DB, version)
    assert (wrong_version.reason, wrong_version.metadata) == (
        "SECRET_VERSION_NOT_FOUND",
        {"name": "orders/db-password", "version": "v0"},
    )
    assert (missing.grpc_code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "SECRET_NOT_FOUND")
    assert bad_version.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad_name.reason, bad_name.field_violations[0].field) == ("INVALID_NAME", "name")


async def test_calls_without_a_valid_token_are_unauthenticated(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async with _serve(serve_config, callers, backend) as running:
        request = pb.GetSecretRequest(name="payments/stripe-key")
        no_token = await _error(running.stub.GetSecret(request))
        garbage = await _error(running.stub.GetSecret(request, metadata=bearer_metadata("x.y.z")))

    assert (no_token.grpc_code, no_token.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CREDENTIALS_MISSING",
    )
    assert garbage.grpc_code == grpc.StatusCode.UNAUTHENTICATED
    assert backend.calls == 0


async def test_a_listing_holds_only_readable_names_page_by_page(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async def pages(token: str, prefix: str = "", size: int = 2) -> list[list[str]]:
        found: list[list[str]] = []
        page_token = ""
        while True:
            request = pb.ListSecretsRequest(
                page_size=size, page_token=page_token, name_prefix=prefix
            )
            response = await running.stub.ListSecrets(request, metadata=bearer_metadata(token))
            found.append([secret.name for secret in response.secrets])
            page_token = response.next_page_token
            if not page_token:
                return found

    async with _serve(serve_config, callers, backend) as running:
        admin = await pages(callers.admin)
        payments = await pages(callers.payments)
        prefixed = await pages(callers.admin, "payments/", size=0)
        response = await running.stub.ListSecrets(
            pb.ListSecretsRequest(name_prefix="orders/"), metadata=bearer_metadata(callers.admin)
        )
        # A token of the `payments/` listing, sent with another prefix, and one never given.
        other_listing = await running.stub.ListSecrets(
            pb.ListSecretsRequest(name_prefix="payments/", page_size=1),
            metadata=bearer_metadata(callers.admin),
        )
        foreign_token, made_up_token = [
            await _error(
                running.stub.ListSecrets(
                    pb.ListSecretsRequest(page_token=token),
                    metadata=bearer_metadata(callers.admin),
                )
            )
            for token in (other_listing.next_page_token, "eyJ2IjoxfQ")
        ]
        negative = await _error(
            running.stub.ListSecrets(
                pb.ListSecretsRequest(page_size=-1), metadata=bearer_metadata(callers.admin)
            )
        )

    assert admin == [
        ["orders/db-password", "payments/eu/stripe-key"],
        ["payments/stripe-key", "shared/mail/smtp-password"],
    ]
    assert payments == [["payments/stripe-key"]]
    assert prefixed == [["payments/eu/stripe-key", "payments/stripe-key"]]
    (listed,) = response.secrets
    assert (listed.name, listed.version, listed.backend) == (
        "orders/db-password",
        digest_version(ORDERS_DB),
        resources_pb2.BACKEND_ENVIRONMENT,
    )
    assert ORDERS_DB not in str(response)
    assert (foreign_token.reason, made_up_token.reason) == (
        "INVALID_PAGE_TOKEN",
        "INVALID_PAGE_TOKEN",
    )
    assert "another name_prefix" in foreign_token.message
    assert (negative.grpc_code, negative.field_violations[0].field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_size",
    )


async def test_settings_are_typed_and_a_name_space_of_their_own(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async def setting(token: str, name: str, kind: int) -> Any:
        request = pb.GetSettingRequest(name=name, type=kind)  # type: ignore[arg-type]
        return (await running.stub.GetSetting(request, metadata=bearer_metadata(token))).setting

    async with _serve(serve_config, callers, backend) as running:
        retries = await setting(
            callers.payments, "payments.retries", resources_pb2.SETTING_TYPE_INT
        )
        enabled = await setting(
            callers.payments, "payments.enabled", resources_pb2.SETTING_TYPE_BOOL
        )
        as_text = await setting(callers.payments, "payments.retries", 0)
        flags = await setting(callers.member, "shared.flags", resources_pb2.SETTING_TYPE_JSON)
        mismatch = await _error(
            setting(callers.payments, "payments.timeout", resources_pb2.SETTING_TYPE_INT)
        )
        denied = await _error(setting(callers.payments, "shared.region", 0))
        secret_as_setting = await _error(setting(callers.admin, "orders/db-password", 0))
        setting_as_secret = await _error(_get(running, callers.admin, "settings/shared.region"))
        unknown_type = await _error(setting(callers.admin, "shared.region", 99))

    assert (retries.name, retries.int_value, retries.backend) == (
        "payments.retries",
        3,
        resources_pb2.BACKEND_ENVIRONMENT,
    )
    assert enabled.bool_value is True
    assert as_text.string_value == "3"
    assert flags.json_value.struct_value.fields["beta"].bool_value is True
    assert (mismatch.grpc_code, mismatch.reason, mismatch.metadata) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "SETTING_TYPE_MISMATCH",
        {"name": "payments.timeout", "type": "INT"},
    )
    assert "twelve" not in mismatch.message
    assert (denied.reason, denied.metadata) == ("SETTING_ACCESS_DENIED", {"name": "shared.region"})
    assert (secret_as_setting.reason, secret_as_setting.metadata) == (
        "SETTING_NOT_FOUND",
        {"name": "orders/db-password"},
    )
    assert setting_as_secret.reason == "INVALID_NAME"
    assert unknown_type.field_violations[0].field == "type"


async def test_a_batch_answers_in_order_or_fails_as_a_whole(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async def batch(token: str, names: list[str]) -> Any:
        request = pb.BatchGetSecretsRequest(names=names)
        return await running.stub.BatchGetSecrets(request, metadata=bearer_metadata(token))

    async with _serve(serve_config, callers, backend) as running:
        both = await batch(callers.admin, ["payments/stripe-key", "orders/db-password"])
        calls = backend.calls
        denied = await _error(batch(callers.payments, ["payments/stripe-key", "orders/db-x"]))
        denied_calls = backend.calls - calls
        missing = await _error(batch(callers.admin, ["payments/stripe-key", "orders/nope"]))
        too_many = await _error(batch(callers.admin, [f"n{index}" for index in range(101)]))
        invalid = await _error(batch(callers.admin, ["ok", "a//b"]))

    assert [(s.name, s.value) for s in both.secrets] == [
        ("payments/stripe-key", STRIPE),
        ("orders/db-password", ORDERS_DB),
    ]
    assert (denied.reason, denied.metadata, denied_calls) == (
        "SECRET_ACCESS_DENIED",
        {"name": "orders/db-x"},
        0,
    )
    assert (missing.reason, missing.metadata) == ("SECRET_NOT_FOUND", {"name": "orders/nope"})
    assert (too_many.reason, too_many.metadata) == ("TOO_MANY_NAMES", {"max_items": "100"})
    assert (invalid.reason, invalid.field_violations[0].field) == ("INVALID_NAME", "names[1]")


async def test_a_settings_batch_answers_in_order_or_fails_as_a_whole(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    int_type, str_type = resources_pb2.SETTING_TYPE_INT, resources_pb2.SETTING_TYPE_STRING

    async def batch(token: str, *items: tuple[str, int]) -> Any:
        request = pb.BatchGetSettingsRequest(
            requests=[pb.GetSettingRequest(name=name, type=kind) for name, kind in items]  # type: ignore[misc]
        )
        return await running.stub.BatchGetSettings(request, metadata=bearer_metadata(token))

    async with _serve(serve_config, callers, backend) as running:
        both = await batch(callers.admin, ("payments.retries", int_type), ("shared.region", 0))
        denied = await _error(
            batch(callers.payments, ("payments.retries", int_type), ("shared.region", str_type))
        )
        mismatch = await _error(
            batch(callers.admin, ("payments.retries", int_type), ("shared.region", int_type))
        )
        invalid = await _error(batch(callers.admin, ("payments.retries", int_type), ("", 0)))

    assert [(s.name, s.WhichOneof("value")) for s in both.settings] == [
        ("payments.retries", "int_value"),
        ("shared.region", "string_value"),
    ]
    assert denied.reason == "SETTING_ACCESS_DENIED"
    assert mismatch.metadata == {"name": "shared.region", "type": "INT"}
    assert invalid.field_violations[0].field == "requests[1].name"


async def test_every_access_is_audited_with_its_answer_and_never_its_value(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async with _serve(serve_config, callers, backend) as running:
        with capture_logs() as logs:
            await _get(running, callers.payments, "payments/stripe-key")
            await _get(running, callers.payments, "payments/stripe-key")
            await _error(_get(running, callers.payments, "orders/db-password"))
            await _error(_get(running, callers.admin, "orders/nope"))
            await running.stub.GetSetting(
                pb.GetSettingRequest(name="payments.retries"),
                metadata=bearer_metadata(callers.payments),
            )

    fields = ("kind", "name", "decision", "cache_state", "backend", "error_reason")
    audited = [
        (e["caller"].rsplit("/", 1)[-1], *(e[field] for field in fields))
        for e in logs
        if e["event"] == AUDIT_EVENT
    ]
    key, env = "payments/stripe-key", "ENVIRONMENT"
    assert audited == [
        ("payments-api", "secret", key, "allowed", "MISS", env, ""),
        ("payments-api", "secret", key, "allowed", "HIT", env, ""),
        ("payments-api", "secret", "orders/db-password", "denied", None, None, ""),
        ("root", "secret", "orders/nope", "allowed", None, None, "SECRET_NOT_FOUND"),
        ("payments-api", "setting", "payments.retries", "allowed", "MISS", env, ""),
    ]
    events = [e for e in logs if e["event"] == AUDIT_EVENT]
    assert {e["tenant"] for e in events} == {"tenants/acme"}
    assert all(e["request_id"] for e in events)
    assert [bool(e["version"]) for e in events] == [True, True, False, False, True]
    assert STRIPE not in repr(logs)


async def test_a_cached_secret_is_served_while_the_vault_is_down(
    serve_config: ServeConfig,
    callers: Callers,
    local_vault: LocalKeyVault,
    log_scan: Any,
) -> None:
    value = log_scan.secret("vault-db-password-stale-if-error")
    local_vault.set_secret("database-password", value)
    async with _serve_vault(
        serve_config,
        callers,
        local_vault,
        key_vault_read_timeout_seconds=0.5,
        cache_ttl_seconds=0.05,
        cache_error_retry_seconds=0,
    ) as running:
        fresh = await _get(running, callers.admin, "database-password")
        local_vault.stop()
        await asyncio.sleep(0.1)  # past the 50 ms TTL: every read now asks the vault first
        answers = await asyncio.gather(
            *(_get(running, callers.admin, "database-password") for _ in range(20)),
            return_exceptions=True,
        )
        answers += [await _get(running, callers.admin, "database-password") for _ in range(5)]
        uncached = await _error(_get(running, callers.admin, "api-key"))
        local_vault.start()
        back = await _get(running, callers.admin, "database-password")

    assert (fresh.value, fresh.backend) == (value, resources_pb2.BACKEND_KEY_VAULT)
    failures = [answer for answer in answers if isinstance(answer, BaseException)]
    assert failures == []
    assert {(a.value, a.cache_state) for a in answers} == {
        (value, resources_pb2.CACHE_STATE_STALE_IF_ERROR)
    }
    assert (uncached.grpc_code, uncached.reason, uncached.metadata) == (
        grpc.StatusCode.UNAVAILABLE,
        "BACKEND_UNAVAILABLE",
        {"backend": "KEY_VAULT"},
    )
    assert (back.value, back.cache_state) == (value, resources_pb2.CACHE_STATE_MISS)


async def _next(call: Any) -> pb.WatchSecretsResponse:
    async with asyncio.timeout(30):  # a bound on a hang, not a measure of speed
        message = await call.read()
    assert message is not grpc.aio.EOF
    result: pb.WatchSecretsResponse = message
    return result


async def test_watch_delivers_rotations_and_resumes_from_the_versions_it_holds(
    serve_config: ServeConfig,
    callers: Callers,
    local_vault: LocalKeyVault,
    log_scan: Any,
) -> None:
    values = [log_scan.secret(f"rotated-db-password-{index}-x7") for index in range(4)]
    versions = [local_vault.set_secret("database-password", values[0])]
    async with _serve_vault(
        serve_config, callers, local_vault, watch_poll_interval_seconds=0.05
    ) as running:
        metadata = bearer_metadata(callers.admin)
        watch = running.stub.WatchSecrets(
            pb.WatchSecretsRequest(names=["database-password"]), metadata=metadata
        )
        first = await _next(watch)
        versions.append(local_vault.set_secret("database-password", values[1]))
        rotated = await _next(watch)
        cached = await _get(running, callers.admin, "database-password")
        watch.cancel()

        # Gone while a rotation happened: the resumed stream sends only what it lacks.
        versions.append(local_vault.set_secret("database-password", values[2]))
        resumed = running.stub.WatchSecrets(
            pb.WatchSecretsRequest(
                names=["database-password"], known_versions={"database-password": versions[1]}
            ),
            metadata=metadata,
        )
        caught_up = await _next(resumed)
        versions.append(local_vault.set_secret("database-password", values[3]))
        latest = await _next(resumed)
        resumed.cancel()

        # Holding the current version, a new stream stays quiet until the next change.
        quiet = running.stub.WatchSecrets(
            pb.WatchSecretsRequest(
                names=["database-password"], known_versions={"database-password": versions[3]}
            ),
            metadata=metadata,
        )
        local_vault.delete_secret("database-password")
        deleted = await _next(quiet)
        quiet.cancel()

    updated = pb.WatchSecretsResponse.CHANGE_TYPE_UPDATED
    assert [(m.change_type, m.secret.value, m.secret.version) for m in (first, rotated)] == [
        (updated, values[0], versions[0]),
        (updated, values[1], versions[1]),
    ]
    assert cached.value == values[1]  # the rotation reached the service's cache too
    assert [(m.secret.value, m.secret.version) for m in (caught_up, latest)] == [
        (values[2], versions[2]),
        (values[3], versions[3]),
    ]
    assert (deleted.name, deleted.change_type, deleted.HasField("secret")) == (
        "database-password",
        pb.WatchSecretsResponse.CHANGE_TYPE_DELETED,
        False,
    )


async def test_a_watch_stays_open_through_a_vault_outage(
    serve_config: ServeConfig,
    callers: Callers,
    local_vault: LocalKeyVault,
    log_scan: Any,
) -> None:
    before = log_scan.secret("outage-db-password-before")
    after = log_scan.secret("outage-db-password-after")
    local_vault.set_secret("database-password", before)
    async with _serve_vault(
        serve_config, callers, local_vault, watch_poll_interval_seconds=0.05
    ) as running:
        watch = running.stub.WatchSecrets(
            pb.WatchSecretsRequest(names=["database-password"]),
            metadata=bearer_metadata(callers.admin),
        )
        first = await _next(watch)
        local_vault.stop()
        local_vault.set_secret("database-password", after)
        await asyncio.sleep(0.3)  # several polls fail meanwhile
        open_during_outage = not watch.done()
        local_vault.start()
        rotated = await _next(watch)
        watch.cancel()

    assert first.secret.value == before
    assert open_during_outage
    assert rotated.secret.value == after


async def test_a_watch_refuses_names_the_caller_may_not_read(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    async def watch(token: str, names: list[str]) -> MainmastError:
        call = running.stub.WatchSecrets(
            pb.WatchSecretsRequest(names=names), metadata=bearer_metadata(token)
        )
        return await _error(call.read())

    async with _serve(serve_config, callers, backend) as running:
        denied = await watch(callers.payments, ["payments/stripe-key", "orders/db-password"])
        empty = await watch(callers.payments, [])
        too_many = await watch(callers.admin, [f"n{index}" for index in range(101)])

    assert (denied.reason, denied.metadata) == (
        "SECRET_ACCESS_DENIED",
        {"name": "orders/db-password"},
    )
    assert backend.calls == 0
    assert empty.grpc_code == too_many.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    assert too_many.reason == "TOO_MANY_NAMES"


async def test_a_new_policy_file_applies_without_a_restart_even_to_open_watches(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    async with _serve(
        serve_config,
        callers,
        backend,
        policy=None,
        access_policy_file=policy,
        access_policy_poll_interval_seconds=0.02,
        watch_poll_interval_seconds=0.02,
    ) as running:
        denied_before = await _error(_get(running, callers.member, "orders/db-password"))
        watch = running.stub.WatchSecrets(
            pb.WatchSecretsRequest(names=["payments/stripe-key"]),
            metadata=bearer_metadata(callers.payments),
        )
        initial = await _next(watch)
        policy.write_text(
            "rules:\n  - roles: [tenants/acme/roles/member]\n    secrets: ['orders/*']\n"
        )

        async def member_may_read() -> bool:
            try:
                await _get(running, callers.member, "orders/db-password")
            except grpc.aio.AioRpcError:
                return False
            return True

        await _bounded(member_may_read)
        backend.secrets["payments/stripe-key"] = STRIPE + "-rotated"
        withdrawn = await _error(watch.read())

    assert denied_before.reason == "SECRET_ACCESS_DENIED"
    assert initial.secret.value == STRIPE
    assert (withdrawn.reason, withdrawn.metadata) == (
        "SECRET_ACCESS_DENIED",
        {"name": "payments/stripe-key"},
    )


async def test_with_no_policy_file_only_platform_admins_read(
    serve_config: ServeConfig, callers: Callers, backend: ScriptedBackend
) -> None:
    with capture_logs() as logs:
        async with _serve(serve_config, callers, backend, policy=None) as running:
            admin = await _get(running, callers.admin, "payments/stripe-key")
            payments = await _error(_get(running, callers.payments, "payments/stripe-key"))

    assert admin.value == STRIPE
    assert payments.reason == "SECRET_ACCESS_DENIED"
    default = [entry for entry in logs if entry["event"] == "config.access_policy_default"]
    assert default[0]["log_level"] == "warning"
    assert "roles/platform-admin" in default[0]["detail"]


async def test_in_dev_mode_every_caller_reads_everything_as_the_dev_principal(
    serve_config: ServeConfig, backend: ScriptedBackend
) -> None:
    with capture_logs() as logs:
        async with serve_config(sources=[backend], auth_required=False) as running:
            secret = (
                await running.stub.GetSecret(pb.GetSecretRequest(name="orders/db-password"))
            ).secret
            listing = await running.stub.ListSecrets(pb.ListSecretsRequest())

    assert secret.value == ORDERS_DB
    assert len(listing.secrets) == 4
    callers_seen = {entry["caller"] for entry in logs if entry["event"] == AUDIT_EVENT}
    assert callers_seen == {"tenants/dev/users/unauthenticated-dev-caller"}
    assert "auth.callers_unauthenticated" in [entry["event"] for entry in logs]
