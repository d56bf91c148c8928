"""Password hashing with argon2id, the unknown-user path, and the password rules."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import argon2
import pytest
from argon2 import _password_hasher
from structlog.testing import capture_logs

from mainmast.auth import AuthErrorReason
from mainmast.errors import ValidationError
from mainmast_auth._passwords import (
    DEFAULT_PARAMETERS,
    PasswordHasher,
    PasswordRules,
    argon2id_parameters,
)

# The cheapest argon2id parameters keep the tests fast; the defaults are tested once below.
FAST = argon2.Parameters(
    type=argon2.Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=1,
    memory_cost=64,
    parallelism=1,
)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(FAST)


def test_the_default_is_argon2id_at_owasps_recommended_minimum() -> None:
    hasher = PasswordHasher()
    password_hash = hasher.hash("a long enough passphrase")
    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert argon2.extract_parameters(password_hash) == DEFAULT_PARAMETERS
    assert hasher.verify(password_hash, "a long enough passphrase")


def test_argon2id_parameters_build_what_argon2_names_its_rfc_9106_profile() -> None:
    assert (
        argon2id_parameters(memory_kib=65_536, iterations=3, parallelism=4)
        == argon2.profiles.RFC_9106_LOW_MEMORY
    )


def test_a_password_verifies_against_its_hash_and_nothing_else(hasher: PasswordHasher) -> None:
    password_hash = hasher.hash("correct horse battery staple")
    assert password_hash.startswith("$argon2id$")
    assert "correct horse" not in password_hash
    assert hasher.verify(password_hash, "correct horse battery staple")
    assert not hasher.verify(password_hash, "correct horse battery stapler")
    assert not hasher.verify(password_hash, "")
    assert hasher.hash("correct horse battery staple") != password_hash  # salted


def test_composed_and_decomposed_accents_are_the_same_password(hasher: PasswordHasher) -> None:
    composed = unicodedata.normalize("NFC", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert hasher.verify(hasher.hash(composed), decomposed)
    assert hasher.verify(hasher.hash(decomposed), composed)


class _CountingVerify:
    """Wraps argon2's verify_secret: counts the calls and the hashes, does the real work."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.hashes: list[bytes] = []

    def __call__(self, hash: bytes, secret: bytes, argon2_type: argon2.Type) -> Any:
        self.hashes.append(hash)
        return self.real(hash, secret, argon2_type)


def test_an_unknown_user_costs_one_argon2id_verification_like_a_wrong_password(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = _CountingVerify(_password_hasher.verify_secret)
    monkeypatch.setattr(_password_hasher, "verify_secret", counting)
    real_hash = hasher.hash("the real password")

    assert not hasher.verify(real_hash, "a wrong password")
    assert not hasher.verify(None, "a wrong password")
    assert not hasher.verify("not a PHC string", "a wrong password")
    assert not hasher.verify("$argon2id$v=19$m=64,t=1,p=1$corrupted", "a wrong password")

    # A corrupt argon2id row fails decoding first, then costs a full verification too.
    wrong_password, unknown_user, foreign_hash, corrupt_row, unreadable_hash = counting.hashes
    assert corrupt_row.startswith(b"$argon2id$v=19$m=64,t=1,p=1$corrupted")
    assert wrong_password == real_hash.encode()
    # The other two ran against a real hash with the same parameters, not a shortcut.
    for dummy in (unknown_user, foreign_hash, unreadable_hash):
        assert argon2.extract_parameters(dummy.decode()) == argon2.extract_parameters(real_hash)


def test_an_unreadable_stored_hash_denies_and_is_logged_without_the_hash(
    hasher: PasswordHasher,
) -> None:
    with capture_logs() as logs:
        assert not hasher.verify("$argon2id$corrupted-row-value", "any password")
    assert logs == [{"event": "auth.password_hash_unreadable", "log_level": "warning"}]


def test_a_hash_with_other_parameters_needs_rehashing(hasher: PasswordHasher) -> None:
    assert not hasher.needs_rehash(hasher.hash("a password"))
    stronger = PasswordHasher(
        argon2.Parameters(
            type=argon2.Type.ID,
            version=19,
            salt_len=16,
            hash_len=32,
            time_cost=2,
            memory_cost=64,
            parallelism=1,
        )
    )
    assert stronger.needs_rehash(hasher.hash("a password"))
    assert hasher.needs_rehash("not a hash")


def test_only_argon2id_is_accepted() -> None:
    with pytest.raises(ValueError, match="argon2id"):
        PasswordHasher(
            argon2.Parameters(
                type=argon2.Type.I,
                version=19,
                salt_len=16,
                hash_len=32,
                time_cost=1,
                memory_cost=64,
                parallelism=1,
            )
        )


async def test_the_async_variants_run_off_the_event_loop(hasher: PasswordHasher) -> None:
    password_hash = await hasher.hash_async("an async password")
    assert await hasher.verify_async(password_hash, "an async password")
    assert not await hasher.verify_async(None, "an async password")


# Rules


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "Tr0ub4dor&3xyz",
        "\u00e9t\u00e9 \u00e0 la plage",
        "\u5bc6\u7801\u5b89\u5168\u5f88\u91cd\u8981\u7684\u4e8b\u60c5\u554a\u3002",
        "x" * 11 + "abcde" + "y" * 240,
    ],
)
def test_acceptable_passwords_pass(password: str) -> None:
    rules = PasswordRules()
    assert rules.violations(password, username="alice") == []
    rules.check(password, username="alice")


@pytest.mark.parametrize(
    ("password", "username", "rules"),
    [
        ("short", None, ["min_length"]),
        ("e\u0301" * 6, None, ["min_length", "min_distinct_characters"]),
        ("a" * 257, None, ["max_length", "min_distinct_characters"]),
        ("aaaaaaaaaaaaaaaa", None, ["min_distinct_characters"]),
        ("abababababababab", None, ["min_distinct_characters"]),
        ("good password\x00here", None, ["no_control_characters"]),
        ("my name is Alice-Smith!", "alice-smith", ["no_username"]),
    ],
)
def test_each_broken_rule_is_named_and_the_password_never_shown(
    password: str, username: str | None, rules: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        PasswordRules().check(password, username=username)
    error = caught.value
    assert error.reason == AuthErrorReason.PASSWORD_POLICY_VIOLATION.value
    assert error.metadata == {"field": "password", "rules": ",".join(rules)}
    assert [violation.reason for violation in error.field_violations] == [
        rule.upper() for rule in rules
    ]
    assert all(violation.field == "password" for violation in error.field_violations)
    assert password not in error.message
    assert password not in repr(error.fields())


def test_a_short_username_is_not_held_against_a_password() -> None:
    assert PasswordRules().violations("bob-the-builder-2025", username="bo") == []


def test_rules_can_be_tightened_but_not_made_contradictory() -> None:
    strict = PasswordRules(min_length=20)
    assert [v.rule for v in strict.violations("correct horse staple")] == []
    assert [v.rule for v in strict.violations("correct horse")] == ["min_length"]
    with pytest.raises(ValueError, match="min_length <= max_length"):
        PasswordRules(min_length=30, max_length=20)
    with pytest.raises(ValueError, match="min_distinct_characters"):
        PasswordRules(min_length=4, min_distinct_characters=5)
