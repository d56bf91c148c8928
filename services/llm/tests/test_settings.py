"""The llm service's settings: every one documented, and the config service's credentials
given together and never shown."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from mainmast_llm.settings import LlmSettings

CLIENT_SECRET = "llm-service-account-secret-5d1f"


def test_every_setting_has_a_description() -> None:
    undocumented = [
        name for name, field in LlmSettings.model_fields.items() if not field.description
    ]

    assert undocumented == []


def test_with_no_settings_there_is_no_config_service_and_no_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TARGET", "CLIENT_ID", "CLIENT_SECRET"):
        monkeypatch.delenv(f"MAINMAST_LLM_CONFIG_{name}", raising=False)

    settings = LlmSettings()

    assert (settings.config_target, settings.config_client_id) == ("", "")
    assert settings.config_client_secret is None


def test_the_config_service_and_its_credentials_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAINMAST_LLM_CONFIG_TARGET", "config:50052")
    monkeypatch.setenv("MAINMAST_LLM_CONFIG_CLIENT_ID", "llm-service")
    monkeypatch.setenv("MAINMAST_LLM_CONFIG_CLIENT_SECRET", CLIENT_SECRET)

    settings = LlmSettings()

    assert (settings.config_target, settings.config_client_id) == ("config:50052", "llm-service")
    assert settings.config_client_secret == SecretStr(CLIENT_SECRET)
    assert CLIENT_SECRET not in repr(settings)
    assert CLIENT_SECRET not in str(settings.model_dump())


@pytest.mark.parametrize(
    "credentials",
    [
        {"config_client_id": "llm-service"},
        {"config_client_secret": SecretStr(CLIENT_SECRET)},
        {"config_client_id": "llm-service", "config_client_secret": SecretStr("")},
    ],
    ids=["id-alone", "secret-alone", "empty-secret"],
)
def test_the_client_id_and_secret_are_set_together(credentials: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="MAINMAST_LLM_CONFIG_CLIENT_SECRET together"):
        LlmSettings(config_target="config:50052", **credentials)
