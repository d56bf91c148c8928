"""Redaction of log events: credentials by key, by shape inside text, and registered secrets.

`Redactor` is a structlog processor. It returns a redacted copy of the event (the caller's
nested dicts and lists are never modified) in which:

- the value of every key that names a credential (see `_sensitive_keys`) is `MASK`, at any
  depth of dicts, lists, tuples and sets, and in `(name, value)` pairs such as gRPC metadata
  and raw HTTP headers;
- inside every string: `Bearer <token>` and `Basic <credentials>`, the password of a URL or DSN
  (`postgresql://user:***@host`), and `key=value`, `"key": value` and `Header-Name: value`
  where the key names a credential;
- every value registered in the `SecretRegistry` is `MASK` wherever it appears: in values,
  keys, message strings, exception text and the `repr` of objects.

Speed: each key is judged once and remembered, and so are short texts found to hold nothing
to mask (bounded caches, renewed when a secret is registered); registered secrets are found
with plain substring checks before one precompiled pattern (longest first) replaces them;
every text rule is guarded by a cheap substring check, so an ordinary string costs a few
substring tests.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, quote_plus

from mainmast._sensitive_keys import is_sensitive_key, normalize_key

MASK: Final = "***"
MIN_SECRET_LENGTH: Final = 4
"""Shorter values would mask ordinary words and numbers all over the logs."""

_KEY_CACHE_LIMIT = 4096
_CLEAN_TEXT_LIMIT = 8192
_CLEAN_TEXT_MAX_LENGTH = 256
_MAX_DEPTH = 32
_NUMERIC_CHARACTERS = frozenset("0123456789.-+eEinfINFaA")
_PASSTHROUGH_TYPES = (datetime.datetime, datetime.date, datetime.time, uuid.UUID)

# A credential is a whole token68 word: `bearer expires_in=3600` is a key after a word.
_BEARER = re.compile(r"\b(bearer\s+)([A-Za-z0-9\-._~+/]+=*)(?![A-Za-z0-9\-._~+/=])", re.IGNORECASE)
_BASIC = re.compile(r"\b(basic\s+)([A-Za-z0-9+/]+={0,2})(?![A-Za-z0-9+/=])", re.IGNORECASE)
# Starts at the literal `://`, which re finds fast; any scheme, user optional, password not.
_URL_PASSWORD = re.compile(r"(://[^\s:/?#@]*:)[^\s/?#]+@")
_KEY_EQUALS_VALUE = re.compile(
    r"(?<![\w.-])([A-Za-z_][\w.-]*)([ \t]*=[ \t]*)(\"[^\"]*\"|'[^']*'|[^\s&;,'\"<>()\[\]{}]*)"
)
_QUOTED_KEY_VALUE = re.compile(
    r"([\"'])([A-Za-z_][\w.-]*)\1([ \t]*:[ \t]*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,{}\[\]]+)"
)
_HEADER_LINE = re.compile(r"(?m)^([A-Za-z][\w-]*)(:[ \t]*)([^\r\n]+)")
_HEADER_NAMES_WITHOUT_DASH = frozenset({"authorization", "cookie"})

# A text can hold a credential-named key only if it contains one of these (lower case).
_CREDENTIAL_HINTS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cookie",
    "cred",
    "dsn",
    "sess",
    "sig",
    "jwt",
    "bearer",
    "otp",
    "conn",
)


@dataclass(frozen=True, slots=True)
class SecretSnapshot:
    """An immutable view of the registered secrets, swapped whole on each registration."""

    version: int
    secrets: tuple[str, ...] = field(repr=False)
    """Longest first, so a secret that contains another is masked whole."""
    pattern: re.Pattern[str] | None = field(repr=False)
    may_look_numeric: bool = field(repr=False)
    """Some secret could be the text of a number, so numbers must be checked too."""
    contains_mask: bool = field(repr=False)
    """Some secret contains `*`, so masking can form it again and must be repeated."""


_EMPTY_SNAPSHOT = SecretSnapshot(0, (), None, may_look_numeric=False, contains_mask=False)


class SecretRegistry:
    """The secret values to mask wherever they appear; thread-safe, never shown in a repr."""

    def __init__(self) -> None:
        """Start with no secrets."""
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._snapshot = _EMPTY_SNAPSHOT

    @property
    def snapshot(self) -> SecretSnapshot:
        """The current secrets as one immutable object (read without locking)."""
        return self._snapshot

    def __len__(self) -> int:
        """How many distinct secret values (with their encoded forms) are masked."""
        return len(self._snapshot.secrets)

    def __repr__(self) -> str:
        """Say how many secrets there are, never what they are."""
        return f"<SecretRegistry: {len(self)} secret forms>"

    def register(self, value: str) -> None:
        """Mask `value`, and its URL-encoded and escaped forms, wherever they appear."""
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        if len(value) < MIN_SECRET_LENGTH or not value.strip():
            raise ValueError(
                f"a secret must have at least {MIN_SECRET_LENGTH} characters and not be blank: "
                "a shorter one would mask ordinary words all over the logs"
            )
        forms = {form for form in _written_forms(value) if len(form) >= MIN_SECRET_LENGTH}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            self._snapshot = _build_snapshot(self._values, self._snapshot.version + 1)

    def absorb(self, other: SecretRegistry) -> None:
        """Also mask every secret `other` masks (secrets are never dropped on reconfiguration)."""
        if other is self:
            return
        with other._lock:
            values = set(other._values)
        with self._lock:
            if values <= self._values:
                return
            self._values |= values
            self._snapshot = _build_snapshot(self._values, self._snapshot.version + 1)


def _written_forms(value: str) -> set[str]:
    """The ways a secret is written inside other text: plain, URL-encoded, escaped.

    Escaped as inside Python and JSON string literals: a repr of a dict, a logged body.
    """
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        repr(value)[1:-1],
        # repr() of text holding both quote marks escapes the single ones: `'a\\'b"'`.
        repr(f"{value}'\"")[1:-4],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }


def _build_snapshot(values: Iterable[str], version: int) -> SecretSnapshot:
    ordered = tuple(sorted(values, key=lambda value: (-len(value), value)))
    pattern = re.compile("|".join(re.escape(value) for value in ordered)) if ordered else None
    return SecretSnapshot(
        version=version,
        secrets=ordered,
        pattern=pattern,
        may_look_numeric=any(set(value) <= _NUMERIC_CHARACTERS for value in ordered),
        contains_mask=any("*" in value for value in ordered),
    )


class Redactor:
    """A structlog processor that returns a redacted copy of each event; see the module doc."""

    def __init__(self, secrets: SecretRegistry, *, allow_keys: Iterable[str] = ()) -> None:
        """Redact with the secrets of `secrets`; keys in `allow_keys` keep their values.

        An allowed key is exempt only from the key rule: registered secrets, tokens, and
        passwords in its value are still masked.
        """
        if isinstance(allow_keys, str):
            raise TypeError("allow_keys must be a collection of key names, not one str")
        allowed = set()
        for key in allow_keys:
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"allow_keys holds {key!r}; each must be a non-empty key name")
            allowed.add(normalize_key(key))
        self._secrets = secrets
        self._allowed = frozenset(allowed)
        self._rules = _Rules(secrets.snapshot, self._allowed)

    def _current_rules(self) -> _Rules:
        rules = self._rules
        snapshot = self._secrets.snapshot
        if rules.snapshot is not snapshot:
            # A new secret can hide in keys and texts judged before: start with fresh caches.
            rules = _Rules(snapshot, self._allowed)
            self._rules = rules
        return rules

    def __call__(self, logger: object, method_name: str, event_dict: Any) -> Any:
        """Return a redacted copy of `event_dict` (structlog's processor signature)."""
        return self._current_rules().redact_mapping(event_dict, 0)

    def redact_value(self, value: object) -> object:
        """Return `value` redacted: a copy for containers, masked text for strings."""
        return self._current_rules().redact_value(value, 0)

    def redact_text(self, text: str) -> str:
        """Return `text` with secrets, credentials and URL passwords masked."""
        return self._current_rules().redact_text(text)


class _Rules:
    """The redaction rules for one set of secrets, with its key cache."""

    __slots__ = ("_allowed", "_clean_texts", "_keys", "_may_look_numeric", "_secrets", "snapshot")

    def __init__(self, snapshot: SecretSnapshot, allowed: frozenset[str]) -> None:
        self.snapshot = snapshot
        self._secrets = snapshot.secrets
        self._may_look_numeric = snapshot.may_look_numeric
        self._allowed = allowed
        self._keys: dict[object, tuple[str, bool]] = {}
        self._clean_texts: set[str] = set()

    # -- keys ---------------------------------------------------------------------------------

    def _judge_key(self, key: object) -> tuple[str, bool]:
        """(the key as it is written out, whether its value is masked); cached per key."""
        judged = self._keys.get(key)
        if judged is not None:
            return judged
        text = key if isinstance(key, str) else _key_text(key)
        sensitive = is_sensitive_key(text) and normalize_key(text) not in self._allowed
        judged = (self.redact_text(text), sensitive)
        if len(self._keys) >= _KEY_CACHE_LIMIT:
            # Keys are few in practice; a flood of distinct ones must not grow memory.
            self._keys.clear()
        self._keys[key] = judged
        return judged

    def _is_sensitive_name(self, name: str) -> bool:
        return self._judge_key(name)[1]

    # -- values -------------------------------------------------------------------------------

    def redact_mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        redacted: dict[str, Any] = {}
        judge = self._keys.get
        redact_text = self.redact_text
        for key, value in mapping.items():
            judged = judge(key) or self._judge_key(key)
            if judged[1] and value is not None:
                redacted[judged[0]] = MASK
            # The common scalar cases inline: this loop is the hot path of every event.
            elif isinstance(value, str):
                redacted[judged[0]] = redact_text(value)
            elif value is None or (isinstance(value, int | float) and not self._may_look_numeric):
                redacted[judged[0]] = value
            else:
                redacted[judged[0]] = self.redact_value(value, depth + 1)
        return redacted

    def redact_value(self, value: object, depth: int) -> object:  # noqa: PLR0911 - one branch per type
        # Exact type checks first: they are the common case and much cheaper than isinstance.
        if type(value) is str:
            return self.redact_text(value)
        if value is None or type(value) is bool:
            return value
        if type(value) is int or type(value) is float:
            return self._redact_number(value)
        if depth > _MAX_DEPTH:
            return self.redact_text(_text_of(value))
        if type(value) is dict:
            return self.redact_mapping(value, depth)
        if type(value) is list:
            return [self.redact_value(item, depth + 1) for item in value]
        if type(value) is tuple:
            return self._redact_tuple(value, depth)
        return self._redact_other(value, depth)

    def _redact_tuple(self, value: tuple[Any, ...], depth: int) -> tuple[Any, ...]:
        if len(value) == 2:
            name = value[0]
            if isinstance(name, bytes | bytearray):
                name = name.decode("utf-8", "backslashreplace")
            if isinstance(name, str) and self._is_sensitive_name(name) and value[1] is not None:
                # A (name, value) pair: gRPC metadata, raw ASGI headers, form fields.
                return (self.redact_text(name), MASK)
        return tuple(self.redact_value(item, depth + 1) for item in value)

    def _redact_number(self, value: float) -> object:
        if self._may_look_numeric:
            text = repr(value)
            if any(secret in text for secret in self._secrets):
                return MASK
        return value

    def _redact_other(self, value: object, depth: int) -> object:  # noqa: PLR0911 - by type
        if isinstance(value, _PASSTHROUGH_TYPES):
            return value
        if isinstance(value, str):
            return self.redact_text(str(value))
        if isinstance(value, bool | int | float):
            return self._redact_number(value)
        if isinstance(value, Mapping):
            return self.redact_mapping(value, depth)
        if isinstance(value, tuple):
            return self._redact_tuple(value, depth)
        if isinstance(value, list | set | frozenset):
            return [self.redact_value(item, depth + 1) for item in value]
        if isinstance(value, bytes | bytearray):
            return self.redact_text(value.decode("utf-8", "backslashreplace"))
        return self.redact_text(_text_of(value))

    # -- text ---------------------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """Return `text` masked; short texts found clean are remembered (most values repeat)."""
        if text in self._clean_texts:
            return text
        redacted = self._redact_new_text(text)
        # Only texts with nothing to mask are remembered, so no known secret is kept around.
        if len(text) <= _CLEAN_TEXT_MAX_LENGTH and redacted == text:
            if len(self._clean_texts) >= _CLEAN_TEXT_LIMIT:
                self._clean_texts.clear()
            self._clean_texts.add(text)
        return redacted

    def _redact_new_text(self, text: str) -> str:
        """Mask registered secrets first (they may span any pattern), then credential shapes."""
        for secret in self._secrets:
            if secret in text:
                text = self._mask_secrets(text)
                break
        lowered = text.lower()
        if "bearer" in lowered:
            text = _BEARER.sub(_mask_second_group, text)
        if "basic" in lowered:
            text = _BASIC.sub(_mask_basic_credentials, text)
        has_equals = "=" in text
        has_colon = ":" in text
        if (has_equals or has_colon) and _mentions_credential(lowered):
            if has_equals:
                text = _KEY_EQUALS_VALUE.sub(self._mask_key_equals_value, text)
            if has_colon:
                if '":' in text or "':" in text:
                    text = _QUOTED_KEY_VALUE.sub(self._mask_quoted_key_value, text)
                text = _HEADER_LINE.sub(self._mask_header_line, text)
        if has_colon and "@" in text and "://" in text:
            text = _URL_PASSWORD.sub(_mask_url_password, text)
        return text

    def _mask_secrets(self, text: str) -> str:
        pattern = self.snapshot.pattern
        if pattern is None:  # pragma: no cover - a secret matched, so there is a pattern
            return text
        text = pattern.sub(MASK, text)
        if self.snapshot.contains_mask:
            # Each pass shortens the text (secrets are longer than the mask), so this ends.
            while any(secret in text for secret in self._secrets):
                text = pattern.sub(MASK, text)
        return text

    def _mask_key_equals_value(self, match: re.Match[str]) -> str:
        key, separator, value = match.group(1, 2, 3)
        if not value or not self._is_sensitive_name(key):
            return match.group(0)
        return f"{key}{separator}{_mask_keeping_quotes(value)}"

    def _mask_quoted_key_value(self, match: re.Match[str]) -> str:
        quote_mark, key, separator, value = match.group(1, 2, 3, 4)
        if not self._is_sensitive_name(key) or value in {"null", "None"}:
            return match.group(0)
        return f"{quote_mark}{key}{quote_mark}{separator}{_mask_keeping_quotes(value)}"

    def _mask_header_line(self, match: re.Match[str]) -> str:
        name, separator, value = match.group(1, 2, 3)
        looks_like_header = "-" in name or name.lower() in _HEADER_NAMES_WITHOUT_DASH
        if not looks_like_header or not self._is_sensitive_name(name):
            return match.group(0)
        scheme, _, _ = value.partition(" ")
        if scheme.lower() in {"bearer", "basic", "digest", "token"} and " " in value:
            return f"{name}{separator}{scheme} {MASK}"
        return f"{name}{separator}{MASK}"


def _mentions_credential(lowered: str) -> bool:
    # A plain loop: measurably faster here than any() over a generator.
    for hint in _CREDENTIAL_HINTS:  # noqa: SIM110
        if hint in lowered:
            return True
    return False


def _mask_keeping_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def _mask_second_group(match: re.Match[str]) -> str:
    return f"{match.group(1)}{MASK}"


def _mask_basic_credentials(match: re.Match[str]) -> str:
    # "basic" is also an English word: mask only what decodes to `user:password`.
    try:
        decoded = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    if b":" not in decoded:
        return match.group(0)
    return f"{match.group(1)}{MASK}"


def _mask_url_password(match: re.Match[str]) -> str:
    # A callable is faster than a replacement template with a group reference.
    return f"{match.group(1)}{MASK}@"


def _text_of(value: object) -> str:
    """The text a renderer would print for `value`, so that it can be redacted first."""
    to_structlog = getattr(value, "__structlog__", None)
    if callable(to_structlog):
        try:
            return str(to_structlog())
        except Exception:  # noqa: BLE001 - a broken __structlog__ falls back to repr
            return _safe_repr(value)
    return _safe_repr(value)


def _key_text(key: object) -> str:
    try:
        return str(key)
    except Exception:  # noqa: BLE001 - a log line must not fail on a broken __str__
        return _safe_repr(key)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a log line must not fail on a broken __repr__
        return f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
