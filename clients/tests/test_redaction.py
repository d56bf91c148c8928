"""Redaction: credential keys by meaning, credential shapes in text, registered secrets."""

from __future__ import annotations

import string
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mainmast._redaction import _KEY_CACHE_LIMIT, MASK, Redactor, SecretRegistry
from mainmast._sensitive_keys import is_sensitive_key, normalize_key


def make_redactor(*secrets: str, allow_keys: tuple[str, ...] = ()) -> Redactor:
    registry = SecretRegistry()
    for secret in secrets:
        registry.register(secret)
    return Redactor(registry, allow_keys=allow_keys)


# -- keys ---------------------------------------------------------------------------------------

SENSITIVE_KEYS = [
    # passwords
    "password",
    "PASSWORD",
    "Password",
    "passwd",
    "pwd",
    "db_pass",
    "DB_PASSWORD",
    "userPassword",
    "password_hash",
    "passphrase",
    # secrets
    "secret",
    "secrets",
    "client_secret",
    "clientSecret",
    "CLIENT-SECRET",
    "clientsecret",
    "webhook_secret",
    "secret_value",
    "secret_key",
    "aws_secret_access_key",
    # tokens
    "token",
    "access_token",
    "accessToken",
    "refresh_token",
    "refresh_tokens",
    "id_token",
    "csrf_token",
    "x-auth-token",
    "sas_token",
    "jwt",
    "bearer",
    "otp",
    # api keys and other keys that are credentials
    "api_key",
    "apikey",
    "apiKey",
    "API-KEY",
    "x-api-key",
    "X-Api-Key",
    "ocp-apim-subscription-key",
    "private_key",
    "privateKey",
    "signing_key",
    "encryption_key",
    # headers and sessions
    "authorization",
    "Authorization",
    "proxy-authorization",
    "auth",
    "auth_header",
    "cookie",
    "cookies",
    "set-cookie",
    "Set-Cookie",
    "session_id",
    "sessionId",
    "sessionid",
    "JSESSIONID",
    "session_key",
    # credentials and connection strings
    "credential",
    "credentials",
    "dsn",
    "connection_string",
    "connectionString",
    "conn_str",
    "signature",
    "x-amz-signature",
    "authorization_code",
]

INNOCENT_KEYS = [
    # counts of tokens of text, not credentials
    "max_tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "max_completion_tokens",
    "tokens",
    "max_token",
    "cached_tokens",
    # words that merely contain a credential word
    "author",
    "authority",
    "authorized",
    "oauth_provider",
    "bypass",
    "passed",
    # metadata about a credential, not the credential
    "token_type",
    "token_count",
    "token_expires_at",
    "token_endpoint",
    "secret_name",
    "secret_names",
    "secret_version",
    "secret_id",
    "password_changed_at",
    "password_policy",
    "password_set",
    "api_key_id",
    "private_key_id",
    "access_key_id",
    "credential_type",
    "cookie_domain",
    "authorization_url",
    "jwks_url",
    # keys that are not credentials at all
    "key",
    "public_key",
    "cache_key",
    "idempotency_key",
    "primary_key",
    "key_vault_url",
    "auth_service",
    "user",
    "event",
    "request_id",
    "database_url",
    "",
]


@pytest.mark.parametrize("key", SENSITIVE_KEYS)
def test_a_key_that_names_a_credential_is_sensitive(key: str) -> None:
    assert is_sensitive_key(key)
    assert make_redactor()({}, "info", {key: "value-1"}) == {key: MASK}


@pytest.mark.parametrize("key", INNOCENT_KEYS)
def test_a_key_that_does_not_name_a_credential_keeps_its_value(key: str) -> None:
    assert not is_sensitive_key(key)
    assert make_redactor()({}, "info", {key: "value-1"}) == {key: "value-1"}


def test_keys_normalize_to_one_spelling() -> None:
    assert normalize_key("X-Api-Key") == "x_api_key"
    assert normalize_key("xApiKey") == "x_api_key"
    assert normalize_key("APIKey") == "api_key"
    assert normalize_key("client secret") == "client_secret"


def test_a_none_value_stays_none_because_it_reveals_nothing() -> None:
    assert make_redactor()({}, "info", {"password": None}) == {"password": None}


def test_a_sensitive_key_masks_its_whole_value_whatever_its_type() -> None:
    event = {"credentials": {"user": "bob", "pin": 1234}, "tokens": 5, "token": ["a", "b"]}
    assert make_redactor()({}, "info", event) == {
        "credentials": MASK,
        "tokens": 5,
        "token": MASK,
    }


# -- nesting ------------------------------------------------------------------------------------


def test_sensitive_keys_are_masked_at_any_depth_of_dicts_lists_and_tuples() -> None:
    event = {
        "request": {
            "headers": {"Authorization": "abc", "Accept": "application/json"},
            "body": [{"user": {"password": "pw", "name": "bob"}}, ({"api_key": "k"}, 3)],
        },
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    assert make_redactor()({}, "info", event) == {
        "request": {
            "headers": {"Authorization": MASK, "Accept": "application/json"},
            "body": [{"user": {"password": MASK, "name": "bob"}}, ({"api_key": MASK}, 3)],
        },
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def test_name_value_pairs_such_as_grpc_metadata_and_asgi_headers_are_masked() -> None:
    event = {
        "metadata": (("authorization", "Bearer t0ken-value"), ("x-request-id", "r-1")),
        "headers": [(b"cookie", b"session=abc"), (b"accept", b"*/*")],
    }
    assert make_redactor()({}, "info", event) == {
        "metadata": (("authorization", MASK), ("x-request-id", "r-1")),
        "headers": [("cookie", MASK), ("accept", "*/*")],
    }


def test_sets_bytes_and_objects_become_redacted_text() -> None:
    class Settings:
        def __repr__(self) -> str:
            return "Settings(host='db', password='hunter22')"

    event = {"tags": {"only"}, "raw": b"token=abc", "settings": Settings()}
    assert make_redactor()({}, "info", event) == {
        "tags": ["only"],
        "raw": f"token={MASK}",
        "settings": f"Settings(host='db', password='{MASK}')",
    }


def test_the_callers_data_is_never_modified() -> None:
    inner = {"password": "pw", "items": [{"token": "t"}]}
    event = {"data": inner}
    make_redactor()({}, "info", event)
    assert inner == {"password": "pw", "items": [{"token": "t"}]}


def test_a_structure_that_contains_itself_is_redacted_without_recursing_forever() -> None:
    loop: dict[str, Any] = {"password": "pw"}
    loop["self"] = loop
    redacted = make_redactor()({}, "info", {"loop": loop})
    assert "'pw'" not in orjson.dumps(redacted).decode()


def test_datetimes_and_numbers_pass_through_unchanged() -> None:
    import datetime  # noqa: PLC0415 - only this test needs it
    import uuid  # noqa: PLC0415

    moment = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=7)
    event = {"at": moment, "id": ident, "n": 3, "x": 1.5, "ok": True}
    assert make_redactor()({}, "info", event) == event


# -- shapes inside text -------------------------------------------------------------------------

TEXT_CASES = [
    # Bearer and Basic credentials in any string
    ("Authorization: Bearer eyJhbGciOi.J9.abc", f"Authorization: Bearer {MASK}"),
    ("calling with bearer abc.def-ghi_jkl", f"calling with bearer {MASK}"),
    ("BEARER abc123", f"BEARER {MASK}"),
    ("got header Basic dXNlcjpwYXNzd29yZA==", f"got header Basic {MASK}"),
    ("the basic plan costs 5", "the basic plan costs 5"),
    ("basic configuration loaded", "basic configuration loaded"),
    # passwords inside URLs and DSNs
    ("postgresql://app:hunter2@db:5432/app", f"postgresql://app:{MASK}@db:5432/app"),
    ("postgresql+asyncpg://app:p@ss@db/app", f"postgresql+asyncpg://app:{MASK}@db/app"),
    ("redis://:pw123@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
    ("amqp://guest:guest@mq//", f"amqp://guest:{MASK}@mq//"),
    ("https://user@example.com/path", "https://user@example.com/path"),
    ("http://db:5432/app", "http://db:5432/app"),
    ("no url here: a@b", "no url here: a@b"),
    # key=value in text: libpq DSNs, query strings, reprs
    ("host=db user=app password=s3cret dbname=app", f"host=db user=app password={MASK} dbname=app"),
    ("GET /cb?code=1&access_token=abc&page=2", f"GET /cb?code=1&access_token={MASK}&page=2"),
    ("Server=db;User Id=app;Password=s3cret;", f"Server=db;User Id=app;Password={MASK};"),
    ("Settings(password='a b', port=5432)", f"Settings(password='{MASK}', port=5432)"),
    ("max_tokens=256 prompt_tokens=31", "max_tokens=256 prompt_tokens=31"),
    ("token_type=bearer expires_in=3600", "token_type=bearer expires_in=3600"),
    # "key": value in JSON and Python reprs
    ('{"api_key": "sk-123", "model": "gpt"}', f'{{"api_key": "{MASK}", "model": "gpt"}}'),
    ("{'client_secret': 'xyz', 'n': 1}", f"{{'client_secret': '{MASK}', 'n': 1}}"),
    ('{"password": null}', '{"password": null}'),
    ('{"max_tokens": 100}', '{"max_tokens": 100}'),
    # header lines
    ("X-Api-Key: abc123\nAccept: */*", f"X-Api-Key: {MASK}\nAccept: */*"),
    ("Cookie: session=abc; theme=dark", f"Cookie: {MASK}"),
    ("password: must have 8 characters", "password: must have 8 characters"),
    # plain text stays as it was
    ("user signed in after 3 attempts", "user signed in after 3 attempts"),
    ("the author of the token guide", "the author of the token guide"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES)
def test_credentials_inside_text_are_masked(text: str, expected: str) -> None:
    assert make_redactor().redact_text(text) == expected


def test_text_rules_apply_to_values_of_innocent_keys_and_to_the_event() -> None:
    event = {"event": "connecting to redis://:pw1@cache", "url": "https://u:p@h/x"}
    assert make_redactor()({}, "info", event) == {
        "event": f"connecting to redis://:{MASK}@cache",
        "url": f"https://u:{MASK}@h/x",
    }


# -- registered secrets -------------------------------------------------------------------------


def test_a_registered_secret_is_masked_wherever_it_appears() -> None:
    secret = "Zq9-very-private"
    event = {
        "event": f"loaded {secret} from vault",
        f"key-{secret}": "value",
        "nested": [{"a": ["x", f"<{secret}>"]}, (1, secret)],
        "object": ValueError(f"bad value {secret!r}"),
    }
    rendered = orjson.dumps(make_redactor(secret)({}, "info", event)).decode()
    assert secret not in rendered
    assert rendered.count(MASK) == 5


def test_encoded_forms_of_a_registered_secret_are_masked_too() -> None:
    secret = "p@ss/wörd'1\""
    texts = [
        "https://h/?p=p%40ss%2Fw%C3%B6rd%271%22",  # URL-encoded
        "p=p%40ss%2Fw%C3%B6rd%271%22",  # form-encoded
        "{'p': 'p@ss/wörd\\'1\"'}",  # inside a repr
        '{"p": "p@ss/w\\u00f6rd\'1\\""}',  # inside JSON text
        '{"p": "p@ss/wörd\'1\\""}',  # inside JSON text, not ASCII-only
    ]
    redactor = make_redactor(secret)
    for text in texts:
        assert "p@ss" not in redactor.redact_text(text), text
        assert "p%40ss" not in redactor.redact_text(text), text


def test_the_longest_secret_is_masked_whole_when_secrets_overlap() -> None:
    assert make_redactor("abcd", "abcdefgh").redact_text("x abcdefgh y") == f"x {MASK} y"


def test_a_secret_containing_the_mask_character_cannot_be_rebuilt_by_masking() -> None:
    redactor = make_redactor("x***")
    assert "x***" not in redactor.redact_text("xx***")


def test_a_numeric_secret_is_masked_in_numbers_too() -> None:
    assert make_redactor("424242")({}, "info", {"pin": 1424242, "n": 7}) == {
        "pin": MASK,
        "n": 7,
    }


def test_a_secret_registered_later_reaches_keys_judged_before() -> None:
    registry = SecretRegistry()
    redactor = Redactor(registry)
    assert redactor({}, "info", {"late-value-1": 1}) == {"late-value-1": 1}
    registry.register("late-value-1")
    assert redactor({}, "info", {"late-value-1": 1}) == {MASK: 1}


@pytest.mark.parametrize("value", ["", "abc", "    ", "\t\n  "])
def test_a_blank_or_short_secret_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="at least"):
        SecretRegistry().register(value)


def test_a_secret_that_is_not_text_is_refused() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        SecretRegistry().register(b"bytes-secret")  # type: ignore[arg-type]


def test_registering_the_same_secret_twice_changes_nothing() -> None:
    registry = SecretRegistry()
    registry.register("same-secret")
    snapshot = registry.snapshot
    registry.register("same-secret")
    assert registry.snapshot is snapshot


def test_absorbing_another_registry_carries_its_secrets_over() -> None:
    first, second = SecretRegistry(), SecretRegistry()
    first.register("carried-over")
    second.absorb(first)
    assert "carried-over" not in Redactor(second).redact_text("x carried-over y")


# -- the allow-list -----------------------------------------------------------------------------


def test_an_allowed_key_keeps_its_value_but_registered_secrets_in_it_are_still_masked() -> None:
    redactor = make_redactor("registered-1", allow_keys=("csrf-token",))
    event = {
        "csrfToken": "visible",
        "csrf_token": "has registered-1 inside",
        "token": "hidden",
    }
    assert redactor({}, "info", event) == {
        "csrfToken": "visible",
        "csrf_token": f"has {MASK} inside",
        "token": MASK,
    }


def test_allow_keys_given_as_one_string_is_refused() -> None:
    with pytest.raises(TypeError, match="collection"):
        Redactor(SecretRegistry(), allow_keys="token")


@pytest.mark.parametrize("bad", ["", "  ", 3])
def test_allow_keys_with_a_blank_or_non_text_name_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="non-empty key name"):
        Redactor(SecretRegistry(), allow_keys=[bad])  # type: ignore[list-item]


# -- the key cache ------------------------------------------------------------------------------


def test_the_key_cache_stays_bounded_under_a_flood_of_distinct_keys() -> None:
    redactor = make_redactor()
    for batch in range(3):
        event = {f"field_{batch}_{n}": n for n in range(_KEY_CACHE_LIMIT)}
        event["password"] = "pw"
        assert redactor({}, "info", event)["password"] == MASK
    assert len(redactor._rules._keys) <= _KEY_CACHE_LIMIT


# -- properties ---------------------------------------------------------------------------------

# Secrets from characters that no renderer escapes or uses as structure (no quotes, backslash,
# space, `=` or `*`), so "does not appear in the output" is exact.
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_.!@#$%^&+~:;,?/|<>()[]{}"
secrets_strategy = st.text(alphabet=SECRET_ALPHABET, min_size=8, max_size=40)
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def structures_with_an_embedded_secret(draw: st.DrawFn, secret: str) -> object:
    """A JSON-like structure with the secret spliced into one string, key or list."""
    prefix, suffix = draw(st.text(max_size=10)), draw(st.text(max_size=10))
    embedded = f"{prefix}{secret}{suffix}"
    where = draw(st.sampled_from(["value", "key", "list", "tuple", "deep"]))
    filler = draw(json_values)
    if where == "value":
        return {"field": embedded, "other": filler}
    if where == "key":
        return {embedded: filler}
    if where == "list":
        return [filler, embedded]
    if where == "tuple":
        return (embedded, filler)
    return {"a": [{"b": ({"c": [embedded]},)}], "d": filler}


@settings(deadline=None)
@given(data=st.data(), secret=secrets_strategy)
def test_a_registered_secret_never_survives_redaction(data: st.DataObject, secret: str) -> None:
    structure = data.draw(structures_with_an_embedded_secret(secret))
    redacted = make_redactor(secret)({}, "info", {"event": "x", "data": structure})
    assert secret not in orjson.dumps(redacted).decode()


@settings(deadline=None)
@given(value=json_values)
def test_redaction_accepts_any_structure_and_is_idempotent(value: object) -> None:
    redactor = make_redactor("idempotent-1")
    once = redactor({}, "info", {"value": value})
    assert redactor({}, "info", once) == once


@settings(deadline=None)
@given(text=st.text())
def test_text_redaction_is_idempotent(text: str) -> None:
    redactor = make_redactor()
    once = redactor.redact_text(text)
    assert redactor.redact_text(once) == once
