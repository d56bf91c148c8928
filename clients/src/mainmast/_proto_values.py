"""Contract values as the SDK clients' results hold them: enum members and aware times."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import Message

E = TypeVar("E", bound=enum.Enum)
V = TypeVar("V", bound=int)


def enum_member(kind: type[E], name_of: Callable[[V], str], value: V, prefix: str) -> E:
    """The member of `kind` named as the contract's enum value `value` without `prefix`
    (`PROVIDER_AZURE_OPENAI` is `Provider.AZURE_OPENAI`), whose name `name_of` gives;
    `kind.UNSPECIFIED` for a value this client does not know, as a newer service may send."""
    try:
        return kind[name_of(value).removeprefix(prefix)]
    except (KeyError, ValueError):
        return kind["UNSPECIFIED"]


def optional_time(owner: Message, name: str) -> datetime | None:
    """The Timestamp field `name` of `owner` as an aware UTC datetime; None when unset."""
    if not owner.HasField(name):
        return None
    moment: datetime = getattr(owner, name).ToDatetime(tzinfo=UTC)
    return moment
