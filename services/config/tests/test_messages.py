"""The config core's values as the contract's messages."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from mainmast.config.v1 import config_service_pb2, resources_pb2
from mainmast_config._backend import BackendKind, SecretRecord
from mainmast_config._cache import CachedSecret, CacheState
from mainmast_config._messages import (
    backend_message,
    cache_state_message,
    cached_secret_message,
    change_message,
    secret_message,
    setting_message,
    setting_type_of,
)
from mainmast_config._settings_values import SettingType, TypedSetting
from mainmast_config._watch_subscription import SecretChange

NOW = datetime(2026, 3, 1, 12, 0, 30, 250_000, tzinfo=UTC)
RECORD = SecretRecord(
    name="payments/stripe-key",
    value="messages-test-value",
    version="v7",
    backend=BackendKind.KEY_VAULT,
    update_time=NOW,
    expire_time=None,
    content_type="text/plain",
    labels=MappingProxyType({"team": "payments"}),
)


def test_enums_map_to_the_contracts_values() -> None:
    assert backend_message(BackendKind.DOTENV) == resources_pb2.BACKEND_DOTENV
    assert cache_state_message(CacheState.STALE_IF_ERROR) == (
        resources_pb2.CACHE_STATE_STALE_IF_ERROR
    )
    assert setting_type_of(resources_pb2.SETTING_TYPE_UNSPECIFIED) is SettingType.STRING
    assert setting_type_of(resources_pb2.SETTING_TYPE_JSON) is SettingType.JSON


def test_a_cached_answer_carries_value_version_backend_state_ttl_and_fetch_time() -> None:
    message = cached_secret_message(
        CachedSecret(record=RECORD, state=CacheState.HIT, ttl=12.5, fetch_time=NOW)
    )

    assert (message.name, message.value, message.version) == (
        "payments/stripe-key",
        "messages-test-value",
        "v7",
    )
    assert (message.backend, message.cache_state) == (
        resources_pb2.BACKEND_KEY_VAULT,
        resources_pb2.CACHE_STATE_HIT,
    )
    assert message.ttl.ToTimedelta().total_seconds() == 12.5
    assert message.fetch_time.ToDatetime(tzinfo=UTC) == NOW


def test_a_listed_secret_has_its_metadata_and_never_its_value() -> None:
    message = secret_message("payments/stripe-key", BackendKind.KEY_VAULT, RECORD)
    bare = secret_message("orders/db", BackendKind.FILES, None)

    assert "messages-test-value" not in str(message)
    assert (message.version, message.content_type, dict(message.labels)) == (
        "v7",
        "text/plain",
        {"team": "payments"},
    )
    assert message.update_time.ToDatetime(tzinfo=UTC) == NOW
    assert not message.HasField("expire_time")
    assert (bare.name, bare.version, bare.backend) == ("orders/db", "", resources_pb2.BACKEND_FILES)


@pytest.mark.parametrize(
    ("setting_type", "value", "field", "expected"),
    [
        (SettingType.STRING, "eu-west", "string_value", "eu-west"),
        (SettingType.INT, -7, "int_value", -7),
        (SettingType.BOOL, True, "bool_value", True),
    ],
)
def test_a_setting_is_sent_in_the_field_of_its_type(
    setting_type: SettingType, value: object, field: str, expected: object
) -> None:
    setting = TypedSetting("s", setting_type, value, BackendKind.ENVIRONMENT)  # type: ignore[arg-type]
    message = setting_message(setting)

    assert message.WhichOneof("value") == field
    assert getattr(message, field) == expected


def test_a_json_setting_of_any_shape_is_a_protobuf_value() -> None:
    for document in ({"limits": [1, 2.5, None, True]}, [1, "a"], "text", 3, None):
        message = setting_message(TypedSetting("s", SettingType.JSON, document, BackendKind.FILES))
        assert message.WhichOneof("value") == "json_value"
    assert message.json_value.WhichOneof("kind") == "null_value"


def test_a_change_is_an_update_with_the_value_or_a_deletion_without() -> None:
    updated = change_message(SecretChange("payments/stripe-key", RECORD), ttl=300, fetch_time=NOW)
    deleted = change_message(SecretChange("payments/stripe-key", None), ttl=300, fetch_time=NOW)
    response = config_service_pb2.WatchSecretsResponse

    assert (updated.change_type, updated.secret.value) == (
        response.CHANGE_TYPE_UPDATED,
        "messages-test-value",
    )
    assert updated.secret.cache_state == resources_pb2.CACHE_STATE_MISS
    assert (deleted.change_type, deleted.HasField("secret")) == (
        response.CHANGE_TYPE_DELETED,
        False,
    )
