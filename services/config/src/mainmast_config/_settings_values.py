"""Typed settings: non-secret configuration read from the same backends as secrets.

A backend stores text; a caller asks for it as a type, and gets it parsed or a clear error:

| type     | accepted text                                                         |
| -------- | --------------------------------------------------------------------- |
| `STRING` | anything, as stored                                                   |
| `INT`    | a signed 64-bit decimal integer: `42`, `-7`, `+3` (spaces around it)  |
| `BOOL`   | `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case          |
| `JSON`   | one JSON document (RFC 8259; no NaN or Infinity)                      |

Text that does not parse fails with FAILED_PRECONDITION / SETTING_TYPE_MISMATCH, as the
wire contract (error_reason.proto) says: the caller's request is valid, the stored value is
not what it should be. Neither the message nor the metadata ever repeats the stored text:
the backends are shared with secrets, and an operator who stored a secret under a setting's
name must not see it echoed in an error. A name no backend has fails with NOT_FOUND /
SETTING_NOT_FOUND.

Settings are a name space of their own: the service stores the setting `checkout.max-items`
under the name `settings/checkout.max-items` of its backends (`SETTINGS__CHECKOUT_MAX_ITEMS`
in the environment, `settings--checkout-max-items` in Key Vault, `settings/checkout.max-items`
under the files directory), so a setting name never reads a secret, and the secret names
under `settings/` are not secrets (see `setting_storage_name`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, TypeAlias

import orjson

from mainmast.errors import FailedPreconditionError, NotFoundError

from ._backend import BackendKind, SecretRecord
from ._cache import SecretSource
from ._errors import CONFIG_ERROR_DOMAIN, ConfigErrorReason
from ._names import check_name

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
"""A parsed JSON document."""

SettingValue: TypeAlias = str | int | bool | JsonValue
"""A setting's value in the type asked for."""

SETTINGS_NAMESPACE: Final = "settings/"
"""The prefix of the backend names that hold settings."""

INT64_MIN: Final = -(2**63)
"""The smallest INT setting."""
INT64_MAX: Final = 2**63 - 1
"""The largest INT setting."""

# ASCII digits only: Python's int() would also take "1_000" and other scripts' digits.
_DECIMAL: Final = re.compile(r"[+-]?[0-9]+")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


class SettingType(enum.StrEnum):
    """The type a setting is read as; each is a `mainmast.config.v1.SettingType` without prefix."""

    STRING = "STRING"
    """Text, as stored."""
    INT = "INT"
    """A signed 64-bit decimal integer."""
    BOOL = "BOOL"
    """true/false, 1/0, yes/no or on/off, in any case."""
    JSON = "JSON"
    """A JSON document."""


class SettingErrorReason(enum.StrEnum):
    """ErrorInfo reasons of settings, each the name of an `ErrorReason` value."""

    SETTING_NOT_FOUND = "SETTING_NOT_FOUND"
    """No backend has a setting of this name."""
    SETTING_TYPE_MISMATCH = "SETTING_TYPE_MISMATCH"
    """The stored text does not parse as the type asked for."""


@dataclass(frozen=True, slots=True)
class TypedSetting:
    """A setting read as a type."""

    name: str
    """The setting's name."""
    type: SettingType
    """The type it was read as."""
    value: SettingValue
    """The parsed value."""
    backend: BackendKind
    """The backend that answered."""


def setting_not_found(name: str) -> NotFoundError:
    """NOT_FOUND / SETTING_NOT_FOUND for `name`."""
    return NotFoundError(
        f"Setting {name!r} was not found.",
        reason=SettingErrorReason.SETTING_NOT_FOUND,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"name": name},
    )


def setting_type_mismatch(
    name: str, setting_type: SettingType, why: str
) -> FailedPreconditionError:
    """FAILED_PRECONDITION / SETTING_TYPE_MISMATCH; `why` must not contain the stored text."""
    return FailedPreconditionError(
        f"Setting {name!r} is not a valid {setting_type.value}: {why}.",
        reason=SettingErrorReason.SETTING_TYPE_MISMATCH,
        domain=CONFIG_ERROR_DOMAIN,
        metadata={"name": name, "type": setting_type.value},
    )


def parse_setting(name: str, text: str, setting_type: SettingType) -> SettingValue:
    """`text` (the stored value of setting `name`) read as `setting_type`.

    FailedPreconditionError (SETTING_TYPE_MISMATCH) when it does not parse; the error never
    contains `text`.
    """
    match setting_type:
        case SettingType.STRING:
            return text
        case SettingType.INT:
            return _parse_int(name, text)
        case SettingType.BOOL:
            return _parse_bool(name, text)
        case SettingType.JSON:
            return _parse_json(name, text)


def setting_storage_name(name: str) -> str:
    """The backend name that holds setting `name`: `settings/<name>`."""
    return SETTINGS_NAMESPACE + name


def is_setting_storage_name(name: str) -> bool:
    """Whether the backend name `name` holds a setting (and so is not a secret)."""
    return name.startswith(SETTINGS_NAMESPACE)


def typed_setting(name: str, record: SecretRecord, setting_type: SettingType) -> TypedSetting:
    """Setting `name` from the record that holds it, read as `setting_type`.

    FailedPreconditionError (SETTING_TYPE_MISMATCH) when its text does not parse.
    """
    value = parse_setting(name, record.value, setting_type)
    return TypedSetting(name=name, type=setting_type, value=value, backend=record.backend)


def as_setting_error(error: NotFoundError, name: str) -> NotFoundError:
    """A not-found error of the backend name that holds setting `name`, as the setting's own
    (SETTING_NOT_FOUND); any other not-found error as it is."""
    if error.reason != ConfigErrorReason.SECRET_NOT_FOUND:
        return error
    return setting_not_found(name)


async def read_setting(source: SecretSource, name: str, setting_type: SettingType) -> TypedSetting:
    """The setting `name` from `source` (a chain, or a cache over one), read as `setting_type`.

    `source` is asked for `name` as it is: the caller picks the name space. ValidationError
    (INVALID_NAME) for an invalid name, NotFoundError (SETTING_NOT_FOUND) when no backend has
    it, FailedPreconditionError (SETTING_TYPE_MISMATCH) when its text does not parse, and the
    source's own errors when a backend is in trouble.
    """
    check_name(name)
    try:
        record = await source.get(name)
    except NotFoundError as exc:
        raise as_setting_error(exc, name) from None
    return typed_setting(name, record, setting_type)


def _parse_int(name: str, text: str) -> int:
    stripped = text.strip()
    if not _DECIMAL.fullmatch(stripped):
        raise setting_type_mismatch(name, SettingType.INT, "expected a decimal integer")
    number = int(stripped)
    if not INT64_MIN <= number <= INT64_MAX:
        raise setting_type_mismatch(name, SettingType.INT, "outside the signed 64-bit range")
    return number


def _parse_bool(name: str, text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise setting_type_mismatch(
        name, SettingType.BOOL, "expected true/false, 1/0, yes/no or on/off"
    )


def _parse_json(name: str, text: str) -> JsonValue:
    try:
        parsed: JsonValue = orjson.loads(text)
    except orjson.JSONDecodeError:
        # The decoder's message quotes the document around the fault: it stays out.
        raise setting_type_mismatch(name, SettingType.JSON, "not a JSON document") from None
    return parsed
