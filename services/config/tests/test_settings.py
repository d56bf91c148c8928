"""The config service's settings: env + .env with no configuration, the chain's order from
what is configured or named, the cache's and the vault's options, and the callers'
authentication settings under the service's own prefix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from mainmast.auth import CallerAuthSettings
from mainmast_config._cache import CacheOptions
from mainmast_config._key_vault import KeyVaultOptions
from mainmast_config.settings import ConfigSettings


@pytest.fixture(autouse=True)
def _no_mainmast_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [key for key in os.environ if key.startswith("MAINMAST_")]:
        monkeypatch.delenv(key)


def test_with_no_configuration_secrets_come_from_env_and_dotenv_cached_five_minutes() -> None:
    settings = ConfigSettings()

    assert isinstance(settings, CallerAuthSettings)
    assert settings.backend_order() == ("env", "dotenv")
    assert (settings.env_prefix, settings.dotenv_path) == ("", Path(".env"))
    assert settings.cache_options() == CacheOptions(
        ttl=300.0, max_staleness=86_400.0, negative_ttl=5.0, max_entries=10_000
    )
    assert settings.access_policy_file is None
    assert (settings.auth_target, settings.auth_required) == ("127.0.0.1:50051", True)
    assert settings.watch_poll_interval_seconds == 10.0


def test_a_vault_url_and_a_files_directory_put_their_backends_first(tmp_path: Path) -> None:
    settings = ConfigSettings(key_vault_url="https://acme.vault.azure.net", files_dir=tmp_path)

    assert settings.backend_order() == ("key_vault", "files", "env", "dotenv")


def test_everything_reads_from_the_services_own_environment_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environment = {
        "MAINMAST_CONFIG_BACKENDS": "files, env",
        "MAINMAST_CONFIG_FILES_DIR": str(tmp_path),
        "MAINMAST_CONFIG_ENV_PREFIX": "APP_",
        "MAINMAST_CONFIG_CACHE_TTL_SECONDS": "30",
        "MAINMAST_CONFIG_CACHE_TTL_OVERRIDES": '{"database-password": 5}',
        "MAINMAST_CONFIG_ACCESS_POLICY_FILE": str(tmp_path / "policy.yaml"),
        "MAINMAST_CONFIG_AUTH_TARGET": "auth.mainmast:50051",
        "MAINMAST_CONFIG_KEY_VAULT_URL": "https://acme.vault.azure.net",
        "MAINMAST_CONFIG_KEY_VAULT_CREDENTIAL": "workload_identity",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)

    settings = ConfigSettings()

    assert settings.backend_order() == ("files", "env")
    assert (settings.env_prefix, settings.cache_ttl_seconds) == ("APP_", 30.0)
    assert settings.cache_options().ttl_of("database-password") == 5.0
    assert settings.access_policy_file == tmp_path / "policy.yaml"
    assert settings.auth_target == "auth.mainmast:50051"
    assert settings.key_vault_credential == "workload_identity"


def test_the_vault_options_say_what_the_settings_say(tmp_path: Path) -> None:
    settings = ConfigSettings(
        key_vault_url="https://acme.vault.azure.net",
        key_vault_read_timeout_seconds=1.5,
        key_vault_retry_connect=0,
        key_vault_ca_bundle=tmp_path / "ca.pem",
        key_vault_verify_challenge_resource=False,
    )

    assert settings.key_vault_options() == KeyVaultOptions(
        read_timeout=1.5,
        retry_connect=0,
        connection_verify=str(tmp_path / "ca.pem"),
        verify_challenge_resource=False,
    )
    assert ConfigSettings().key_vault_options().connection_verify is True


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backends": "key_vault,env"}, "key_vault needs key_vault_url"),
        ({"backends": "files"}, "files needs files_dir"),
        ({"backends": "env,env"}, "each backend appears once"),
        ({"backends": "env,vault"}, "Input should be 'key_vault', 'files', 'env' or 'dotenv'"),
        ({"key_vault_url": "http://acme.vault.azure.net"}, "should match pattern"),
        ({"cache_ttl_overrides": {"../x": 5}}, "'../x'"),
        ({"cache_ttl_overrides": {"x": 0}}, "a TTL is positive"),
        ({"cache_ttl_seconds": 0}, "greater than 0"),
        ({"cache_refresh_ahead": 1}, "less than 1"),
        ({"env_prefix": "APP-"}, "should match pattern"),
        ({"key_vault_credential": "password"}, "Input should be 'default'"),
    ],
)
def test_settings_that_cannot_work_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ConfigSettings(**fields)  # type: ignore[arg-type]


def test_an_empty_backends_value_means_the_configured_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAINMAST_CONFIG_BACKENDS", " , ")

    assert ConfigSettings().backend_order() == ("env", "dotenv")
