"""What ConfigClient returns, built from the contract's messages; the package's public names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mainmast.config
from mainmast.config import (
    Backend,
    CacheState,
    ChangeType,
    SecretChange,
    SecretMetadata,
    SecretValue,
)
from mainmast.config.v1 import config_service_pb2, resources_pb2

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_the_public_names_are_these() -> None:
    assert mainmast.config.__all__ == [
        "CONFIG_CLIENT_DOMAIN",
        "MAX_BATCH_ITEMS",
        "Backend",
        "CacheState",
        "ChangeType",
        "ConfigClient",
        "ConfigClientConfig",
        "JsonValue",
        "SecretChange",
        "SecretMetadata",
        "SecretValue",
        "TokenProvider",
    ]


def _secret_value() -> resources_pb2.SecretValue:
    message = resources_pb2.SecretValue(
        name="database-password",
        value="results-test-value",
        version="v3",
        backend=resources_pb2.BACKEND_KEY_VAULT,
        cache_state=resources_pb2.CACHE_STATE_STALE_IF_ERROR,
    )
    message.ttl.FromTimedelta(timedelta(seconds=42.5))
    message.fetch_time.FromDatetime(NOW)
    return message


def test_a_secret_value_keeps_everything_and_hides_its_value_from_repr() -> None:
    secret = SecretValue.from_proto(_secret_value())

    assert secret == SecretValue(
        name="database-password",
        value="results-test-value",
        version="v3",
        backend=Backend.KEY_VAULT,
        cache_state=CacheState.STALE_IF_ERROR,
        ttl=timedelta(seconds=42.5),
        fetch_time=NOW,
    )
    assert "results-test-value" not in repr(secret)


def test_values_this_client_does_not_know_read_as_unspecified() -> None:
    message = resources_pb2.SecretValue(name="x", backend=77, cache_state=99)  # type: ignore[arg-type]
    secret = SecretValue.from_proto(message)

    assert (secret.backend, secret.cache_state, secret.fetch_time) == (
        Backend.UNSPECIFIED,
        CacheState.UNSPECIFIED,
        None,
    )


def test_metadata_has_times_and_labels_when_the_backend_gave_them() -> None:
    message = resources_pb2.Secret(
        name="payments/stripe-key",
        version="v1",
        backend=resources_pb2.BACKEND_FILES,
        content_type="text/plain",
        labels={"team": "payments"},
    )
    message.update_time.FromDatetime(NOW)
    metadata = SecretMetadata.from_proto(message)

    assert (metadata.update_time, metadata.expire_time) == (NOW, None)
    assert dict(metadata.labels) == {"team": "payments"}
    assert (metadata.backend, metadata.content_type) == (Backend.FILES, "text/plain")


def test_a_change_is_an_update_with_its_value_or_a_deletion() -> None:
    response = config_service_pb2.WatchSecretsResponse
    updated = SecretChange.from_proto(
        response(
            name="database-password",
            change_type=response.CHANGE_TYPE_UPDATED,
            secret=_secret_value(),
        )
    )
    deleted = SecretChange.from_proto(
        response(name="database-password", change_type=response.CHANGE_TYPE_DELETED)
    )

    assert (updated.change_type, updated.version) == (ChangeType.UPDATED, "v3")
    assert (deleted.change_type, deleted.secret, deleted.version) == (ChangeType.DELETED, None, "")
