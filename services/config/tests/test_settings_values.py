"""Typed settings: each type's accepted text, and clear errors that never repeat the value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mainmast.config.v1 import error_reason_pb2, resources_pb2
from mainmast.errors import (
    FailedPreconditionError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from mainmast_config._backend import BackendKind
from mainmast_config._chain import BackendChain
from mainmast_config._errors import CONFIG_ERROR_DOMAIN, backend_unavailable
from mainmast_config._settings_values import (
    INT64_MAX,
    INT64_MIN,
    SettingErrorReason,
    SettingType,
    TypedSetting,
    as_setting_error,
    is_setting_storage_name,
    parse_setting,
    read_setting,
    setting_storage_name,
    typed_setting,
)
from mainmast_config._testing import ScriptedBackend


def test_reasons_and_types_are_values_of_the_contract() -> None:
    assert {reason.value for reason in SettingErrorReason} <= set(
        error_reason_pb2.ErrorReason.keys()
    )
    assert {f"SETTING_TYPE_{kind.value}" for kind in SettingType} == set(
        resources_pb2.SettingType.keys()
    ) - {"SETTING_TYPE_UNSPECIFIED"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        (" -7\n", -7),
        ("+3", 3),
        ("0", 0),
        ("007", 7),
        (str(INT64_MAX), INT64_MAX),
        (str(INT64_MIN), INT64_MIN),
    ],
)
def test_int_settings_are_signed_64_bit_decimals(text: str, expected: int) -> None:
    assert parse_setting("checkout.max-items", text, SettingType.INT) == expected


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_every_64_bit_integer_reads_back(number: int) -> None:
    assert parse_setting("n", str(number), SettingType.INT) == number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(word, True) for word in ("true", "TRUE", "True", "1", "yes", "YES", "on", " On ")],
        *[(word, False) for word in ("false", "False", "0", "no", "No", "off", "OFF\n")],
    ],
)
def test_bool_settings_take_the_usual_words_in_any_case(text: str, expected: bool) -> None:
    assert parse_setting("feature.enabled", text, SettingType.BOOL) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": [1, 2.5, null, true], "b": "x"}', {"a": [1, 2.5, None, True], "b": "x"}),
        ("[]", []),
        ("12", 12),
        ('"text"', "text"),
        ("null", None),
    ],
)
def test_json_settings_are_any_json_document(text: str, expected: object) -> None:
    assert parse_setting("limits", text, SettingType.JSON) == expected


def test_string_settings_are_the_text_as_stored() -> None:
    assert parse_setting("greeting", "  Hello, world!\n", SettingType.STRING) == "  Hello, world!\n"


@pytest.mark.parametrize(
    ("setting_type", "text"),
    [
        (SettingType.INT, "4.2"),
        (SettingType.INT, "1_000"),
        (SettingType.INT, "\u0663"),  # ARABIC-INDIC DIGIT THREE: int() takes it, we do not
        (SettingType.INT, ""),
        (SettingType.INT, "0x10"),
        (SettingType.INT, str(INT64_MAX + 1)),
        (SettingType.INT, str(INT64_MIN - 1)),
        (SettingType.BOOL, "maybe"),
        (SettingType.BOOL, ""),
        (SettingType.BOOL, "2"),
        (SettingType.JSON, "{"),
        (SettingType.JSON, "NaN"),
        (SettingType.JSON, ""),
        (SettingType.JSON, "{'single': 'quotes'}"),
    ],
)
def test_text_that_does_not_parse_is_a_type_mismatch(setting_type: SettingType, text: str) -> None:
    with pytest.raises(FailedPreconditionError) as caught:
        parse_setting("checkout.max-items", text, setting_type)
    error = caught.value
    assert error.reason == SettingErrorReason.SETTING_TYPE_MISMATCH
    assert error.domain == CONFIG_ERROR_DOMAIN
    assert error.metadata == {"name": "checkout.max-items", "type": setting_type.value}
    assert "checkout.max-items" in error.message


@pytest.mark.parametrize("setting_type", [SettingType.INT, SettingType.BOOL, SettingType.JSON])
def test_a_mismatch_never_repeats_the_stored_text(setting_type: SettingType) -> None:
    stored = '{"password": "hunter2-Zq9"'  # a secret stored under a setting's name, by mistake
    with pytest.raises(FailedPreconditionError) as caught:
        parse_setting("database.port", stored, setting_type)
    error = caught.value
    seen = [error.message, *error.metadata.values(), repr(error), str(error)]
    cause = error.__cause__
    assert cause is None
    assert error.__suppress_context__ or error.__context__ is None
    assert all("hunter2" not in text for text in seen)


async def test_read_setting_reads_through_the_chain_and_names_the_backend() -> None:
    files = ScriptedBackend(BackendKind.FILES, {"checkout.max-items": "12"})
    environment = ScriptedBackend(
        BackendKind.ENVIRONMENT, {"checkout.max-items": "99", "feature.enabled": "on"}
    )
    chain = BackendChain([files, environment])
    assert await read_setting(chain, "checkout.max-items", SettingType.INT) == TypedSetting(
        name="checkout.max-items", type=SettingType.INT, value=12, backend=BackendKind.FILES
    )
    enabled = await read_setting(chain, "feature.enabled", SettingType.BOOL)
    assert (enabled.value, enabled.backend) == (True, BackendKind.ENVIRONMENT)
    text = await read_setting(chain, "checkout.max-items", SettingType.STRING)
    assert text.value == "12"


async def test_read_setting_errors_are_the_settings_own() -> None:
    backend = ScriptedBackend(BackendKind.ENVIRONMENT, {"port": "eighty"})
    chain = BackendChain([backend])
    with pytest.raises(NotFoundError) as not_found:
        await read_setting(chain, "missing", SettingType.STRING)
    assert not_found.value.reason == SettingErrorReason.SETTING_NOT_FOUND
    assert not_found.value.metadata == {"name": "missing"}
    with pytest.raises(FailedPreconditionError) as mismatch:
        await read_setting(chain, "port", SettingType.INT)
    assert mismatch.value.reason == SettingErrorReason.SETTING_TYPE_MISMATCH
    with pytest.raises(ValidationError):
        await read_setting(chain, "../etc", SettingType.STRING)
    backend.fail_next(backend_unavailable("ENVIRONMENT", "down"))
    with pytest.raises(UnavailableError):
        await read_setting(chain, "port", SettingType.STRING)


def test_settings_live_under_their_own_prefix_in_the_backends() -> None:
    assert setting_storage_name("checkout.max-items") == "settings/checkout.max-items"
    assert is_setting_storage_name("settings/checkout.max-items")
    assert not is_setting_storage_name("database-password")
    assert not is_setting_storage_name("settingsx/y")


async def test_a_record_becomes_a_typed_setting_and_a_missing_name_the_settings_error() -> None:
    record = await ScriptedBackend(BackendKind.FILES, {"settings/checkout.max-items": "12"}).get(
        "settings/checkout.max-items"
    )

    assert typed_setting("checkout.max-items", record, SettingType.INT) == TypedSetting(
        name="checkout.max-items", type=SettingType.INT, value=12, backend=BackendKind.FILES
    )
    converted = as_setting_error(
        NotFoundError("Secret", "settings/x", reason="SECRET_NOT_FOUND"), "x"
    )
    assert (converted.reason, converted.metadata) == ("SETTING_NOT_FOUND", {"name": "x"})
    other = NotFoundError("Secret", "x", reason="SECRET_VERSION_NOT_FOUND")
    assert as_setting_error(other, "x") is other
