"""The config core's values as the contract's messages (resources.proto), in one place."""

from __future__ import annotations

from datetime import datetime

import orjson
from google.protobuf import json_format, struct_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mainmast.config.v1 import config_service_pb2, resources_pb2

from ._backend import BackendKind, SecretRecord
from ._cache import CachedSecret, CacheState
from ._settings_values import SettingType, TypedSetting
from ._watch_subscription import ChangeType, SecretChange


def backend_message(kind: BackendKind) -> resources_pb2.Backend.ValueType:
    """The contract's Backend value of `kind`."""
    return resources_pb2.Backend.Value(f"BACKEND_{kind.value}")


def cache_state_message(state: CacheState) -> resources_pb2.CacheState.ValueType:
    """The contract's CacheState value of `state`."""
    return resources_pb2.CacheState.Value(f"CACHE_STATE_{state.value}")


def setting_type_of(value: resources_pb2.SettingType.ValueType) -> SettingType:
    """The type a request asks for; SETTING_TYPE_UNSPECIFIED reads as STRING."""
    if value == resources_pb2.SETTING_TYPE_UNSPECIFIED:
        return SettingType.STRING
    return SettingType(resources_pb2.SettingType.Name(value).removeprefix("SETTING_TYPE_"))


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _duration(seconds: float) -> Duration:
    return Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


def secret_value_message(
    record: SecretRecord, *, state: CacheState, ttl: float, fetch_time: datetime
) -> resources_pb2.SecretValue:
    """One read of a secret, value included."""
    return resources_pb2.SecretValue(
        name=record.name,
        value=record.value,
        version=record.version,
        backend=backend_message(record.backend),
        cache_state=cache_state_message(state),
        ttl=_duration(ttl),
        fetch_time=_timestamp(fetch_time),
    )


def cached_secret_message(answer: CachedSecret) -> resources_pb2.SecretValue:
    """The cache's answer as a SecretValue."""
    return secret_value_message(
        answer.record, state=answer.state, ttl=answer.ttl, fetch_time=answer.fetch_time
    )


def secret_message(
    name: str, backend: BackendKind, record: SecretRecord | None
) -> resources_pb2.Secret:
    """What is known of a secret, never its value; `record` (when read) adds its metadata."""
    secret = resources_pb2.Secret(name=name, backend=backend_message(backend))
    if record is not None:
        secret.version = record.version
        secret.backend = backend_message(record.backend)
        secret.content_type = record.content_type
        secret.labels.update(record.labels)
        if record.update_time is not None:
            secret.update_time.FromDatetime(record.update_time)
        if record.expire_time is not None:
            secret.expire_time.FromDatetime(record.expire_time)
    return secret


def setting_message(setting: TypedSetting) -> resources_pb2.Setting:
    """A typed setting; a JSON value as a google.protobuf.Value."""
    message = resources_pb2.Setting(name=setting.name, backend=backend_message(setting.backend))
    value = setting.value
    match setting.type:
        case SettingType.STRING:
            message.string_value = str(value)
        case SettingType.INT:
            assert isinstance(value, int)  # parse_setting returned an int for INT
            message.int_value = value
        case SettingType.BOOL:
            message.bool_value = bool(value)
        case SettingType.JSON:
            # Through text: ParseDict would take any JSON value too, but its stubs accept only
            # a dict, and a JSON value may be a list, a number, text or null.
            document = orjson.dumps(value).decode()
            message.json_value.CopyFrom(json_format.Parse(document, struct_pb2.Value()))
    return message


def change_message(
    change: SecretChange, *, ttl: float, fetch_time: datetime
) -> config_service_pb2.WatchSecretsResponse:
    """A change of a watched secret; the value was read from its backend by the watch."""
    response = config_service_pb2.WatchSecretsResponse(name=change.name)
    if change.change_type is ChangeType.DELETED or change.record is None:
        response.change_type = config_service_pb2.WatchSecretsResponse.CHANGE_TYPE_DELETED
        return response
    response.change_type = config_service_pb2.WatchSecretsResponse.CHANGE_TYPE_UPDATED
    response.secret.CopyFrom(
        secret_value_message(change.record, state=CacheState.MISS, ttl=ttl, fetch_time=fetch_time)
    )
    return response
