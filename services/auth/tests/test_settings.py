"""AuthSettings: the login limits, argon2id costs and HS256 secret, and what they refuse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import argon2
import pytest
from pydantic import SecretStr, ValidationError

from mainmast_auth._login_throttle import LoginLimits
from mainmast_auth._passwords import DEFAULT_PARAMETERS
from mainmast_auth.settings import AuthSettings

SECRET = "0123456789abcdef0123456789abcdef"  # 32 bytes: the least RFC 7518 allows


def test_the_defaults_are_the_throttles_and_the_hashers_own() -> None:
    settings = AuthSettings()
    assert settings.login_limits() == LoginLimits()
    assert settings.password_hash_parameters() == DEFAULT_PARAMETERS
    assert settings.signing_algorithm == "EdDSA"
    assert settings.signing_hmac_secret is None


def test_the_login_settings_become_the_throttles_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "LOGIN_MAX_FAILURES": "3",
        "LOGIN_ADDRESS_MAX_FAILURES": "40",
        "LOGIN_WINDOW_SECONDS": "600",
        "LOGIN_BASE_LOCKOUT_SECONDS": "30",
        "LOGIN_MAX_LOCKOUT_SECONDS": "900",
        "TRUSTED_PROXY_HOPS": "2",
    }.items():
        monkeypatch.setenv(f"MAINMAST_AUTH_{name}", value)
    limits = AuthSettings().login_limits()
    assert limits == LoginLimits(
        max_failures=3,
        address_max_failures=40,
        window=timedelta(minutes=10),
        base_lockout=timedelta(seconds=30),
        max_lockout=timedelta(minutes=15),
        trusted_proxy_hops=2,
    )


@pytest.mark.parametrize(
    "values",
    [
        {"login_max_failures": 0},
        {"login_window_seconds": 0},
        {"trusted_proxy_hops": -1},
        {"login_base_lockout_seconds": 120, "login_max_lockout_seconds": 60},
    ],
)
def test_login_settings_out_of_bounds_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AuthSettings(**values)


def test_rfc_9106s_profile_can_be_chosen_for_password_hashes() -> None:
    settings = AuthSettings(
        password_hash_memory_kib=65_536, password_hash_iterations=3, password_hash_parallelism=4
    )
    assert settings.password_hash_parameters() == argon2.profiles.RFC_9106_LOW_MEMORY


@pytest.mark.parametrize(
    ("memory_kib", "iterations"), [(19_456, 1), (12_288, 2), (7_168, 4), (46_000, 1)]
)
def test_argon2id_costs_below_owasps_minimums_are_refused(memory_kib: int, iterations: int) -> None:
    with pytest.raises(ValidationError, match="OWASP"):
        AuthSettings(password_hash_memory_kib=memory_kib, password_hash_iterations=iterations)


@pytest.mark.parametrize(("memory_kib", "iterations"), [(47_104, 1), (9_216, 4), (7_168, 5)])
def test_each_of_owasps_equivalent_minimums_is_accepted(memory_kib: int, iterations: int) -> None:
    settings = AuthSettings(
        password_hash_memory_kib=memory_kib, password_hash_iterations=iterations
    )
    assert settings.password_hash_parameters().memory_cost == memory_kib


def test_hs256_with_a_secret_of_32_bytes_is_accepted_and_the_secret_stays_hidden() -> None:
    settings = AuthSettings(signing_algorithm="HS256", signing_hmac_secret=SecretStr(SECRET))
    assert settings.signing_hmac_secret is not None
    assert SECRET not in repr(settings)


def test_hs256_without_a_secret_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="needs MAINMAST_AUTH_SIGNING_HMAC_SECRET"):
        AuthSettings(signing_algorithm="HS256")


def test_a_secret_without_hs256_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAINMAST_AUTH_SIGNING_HMAC_SECRET", SECRET)
    with pytest.raises(ValidationError, match="set it to HS256"):
        AuthSettings()


def test_a_short_secret_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        AuthSettings(signing_algorithm="HS256", signing_hmac_secret=SecretStr("too short"))


def test_an_empty_secret_variable_means_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAINMAST_AUTH_SIGNING_HMAC_SECRET", "  ")
    assert AuthSettings().signing_hmac_secret is None
