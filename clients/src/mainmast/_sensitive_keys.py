"""Which keys name a credential: the meaning of a key, not a substring of it.

A key is split into words (``clientSecret``, ``client-secret`` and ``CLIENT_SECRET`` all become
``client secret``) and judged by what it names:

- a credential word anywhere names a credential (``password``, ``db_pass``, ``client_secret``,
  ``access_token``, ``set-cookie``, ``jwt``, ``dsn``, ...);
- ``key`` and ``tokens`` name one only with a qualifier that makes them a credential
  (``api_key``, ``private_key``, ``signing_key``, ``refresh_tokens``), so ``public_key``,
  ``cache_key``, ``max_tokens``, ``prompt_tokens`` and ``total_tokens`` stay readable;
  ``token`` after a quantity word (``max_token``) counts tokens of text, not credentials;
- a key whose last word describes the credential rather than holding it (``token_type``,
  ``secret_name``, ``password_changed_at``, ``api_key_id``, ``cookie_domain``) is metadata and
  stays readable; ``session_id`` is the exception, because a session id is itself a bearer
  credential;
- words that merely contain a credential word (``author``, ``authority``, ``oauth``,
  ``bypass``) are different words and stay readable.
"""

from __future__ import annotations

import re
from itertools import pairwise

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SEPARATORS = re.compile(r"[^a-z0-9]+")

# Words that name a credential wherever they stand in a key.
_CREDENTIAL_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "credential",
        "credentials",
        "cookie",
        "cookies",
        "authorization",
        "apikey",
        "jwt",
        "bearer",
        "dsn",
        "otp",
        "signature",
        "sig",
        "sessionid",
        "sessid",
        "jsessionid",
        "phpsessid",
        # Compounds written as one word, which the camelCase split cannot separate.
        "privatekey",
        "secretkey",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "clientsecret",
        "connectionstring",
        "connstr",
    }
)

# `<qualifier>_key` is a credential; a bare `key` (a cache key, a setting's key) is not.
_KEY_QUALIFIERS = frozenset(
    {
        "api",
        "private",
        "secret",
        "signing",
        "encryption",
        "master",
        "access",
        "subscription",
        "client",
        "shared",
        "account",
        "storage",
        "app",
        "auth",
        "hmac",
        "webhook",
        "session",
        "ssh",
        "license",
        "instrumentation",
    }
)

# `<qualifier>_tokens` holds credentials; other `tokens` (max, prompt, total) count text.
_TOKENS_QUALIFIERS = frozenset(
    {
        "access",
        "refresh",
        "id",
        "auth",
        "session",
        "csrf",
        "bearer",
        "api",
        "oauth",
        "jwt",
        "service",
        "client",
        "personal",
        "reset",
        "verification",
        "invite",
        "sas",
    }
)

# `<quantity>_token` counts tokens of text (an LLM's max_token), it holds no credential.
_QUANTITY_WORDS = frozenset(
    {
        "max",
        "min",
        "prompt",
        "completion",
        "total",
        "input",
        "output",
        "cached",
        "reasoning",
        "num",
        "n",
        "used",
        "remaining",
        "context",
        "limit",
    }
)

# Pairs of words that together name a credential.
_CREDENTIAL_PAIRS = frozenset(
    {
        ("connection", "string"),
        ("connection", "str"),
        ("conn", "string"),
        ("conn", "str"),
        ("session", "id"),
        ("session", "key"),
        ("auth", "header"),
        ("auth", "headers"),
    }
)

# A last word that describes a credential instead of holding it.
_METADATA_WORDS = frozenset(
    {
        "id",
        "ids",
        "name",
        "names",
        "type",
        "types",
        "kind",
        "count",
        "length",
        "len",
        "size",
        "version",
        "versions",
        "ttl",
        "expiry",
        "expires",
        "expiration",
        "at",
        "in",
        "url",
        "uri",
        "endpoint",
        "path",
        "file",
        "dir",
        "ref",
        "label",
        "hint",
        "policy",
        "enabled",
        "required",
        "present",
        "set",
        "exists",
        "source",
        "provider",
        "algorithm",
        "alg",
        "scheme",
        "field",
        "fields",
        "format",
        "rotated",
        "created",
        "updated",
        "age",
        "issuer",
        "audience",
        "scope",
        "scopes",
        "domain",
        "secure",
        "httponly",
        "samesite",
    }
)


def key_words(key: str) -> tuple[str, ...]:
    """Split a key into lower-case words: `clientSecret`, `client-secret` -> (client, secret)."""
    spaced = _CAMEL_BOUNDARY.sub("_", key).lower()
    return tuple(word for word in _WORD_SEPARATORS.split(spaced) if word)


def normalize_key(key: str) -> str:
    """One spelling per key, for comparing keys: `X-Api-Key` and `xApiKey` -> `x_api_key`."""
    return "_".join(key_words(key))


def is_sensitive_key(key: str) -> bool:
    """Whether a key, by its meaning, names a credential whose value must be masked."""
    words = key_words(key)
    # `auth=` is how HTTP clients take credentials; `auth_service` and friends are names.
    if words == ("auth",) or not _CREDENTIAL_PAIRS.isdisjoint(pairwise(words)):
        return True
    if not words or words[-1] in _METADATA_WORDS:
        return False
    return any(_names_credential(previous, word) for previous, word in pairwise(("", *words)))


def _names_credential(previous: str, word: str) -> bool:
    if word in _CREDENTIAL_WORDS:
        return not (word == "token" and previous in _QUANTITY_WORDS)
    if word == "key":
        return previous in _KEY_QUALIFIERS
    return word == "tokens" and previous in _TOKENS_QUALIFIERS
