"""Provider keys: read from the environment or the config service, once each, and masked in
every log line from the moment they are read."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson
import pytest

from mainmast.errors import FailedPreconditionError, NotFoundError, UnavailableError
from mainmast.logging import MASK, configure_logging, get_logger, reset_logging
from mainmast_llm._provider_keys import EnvironmentSecrets, ProviderKeys
from mainmast_llm._routing import KeyReference, KeySource

ENV_KEY = "sk-env-provider-key-7c1d9e"
CONFIG_KEY = "sk-config-provider-key-3b8f0a"


class ConfigSecrets:
    """A config service's secrets: counts reads, fails as told."""

    def __init__(self, values: dict[str, str], *, failure: Exception | None = None) -> None:
        self.values = values
        self.failure = failure
        self.reads: list[str] = []

    async def get_secret(self, name: str) -> str:
        self.reads.append(name)
        if self.failure is not None:
            raise self.failure
        if name not in self.values:
            raise NotFoundError("Secret", name)
        return self.values[name]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Logging configured to write JSON lines here; reset after the test."""
    stream = io.StringIO()
    configure_logging(stream=stream, json=True)
    try:
        yield stream
    finally:
        reset_logging()


def env(name: str) -> KeyReference:
    return KeyReference(KeySource.ENVIRONMENT, name)


def secret(name: str) -> KeyReference:
    return KeyReference(KeySource.CONFIG_SECRET, name)


async def test_keys_come_from_their_sources_and_are_masked_in_every_line_after(
    log_stream: io.StringIO,
) -> None:
    keys = ProviderKeys(
        EnvironmentSecrets({"OPENAI_KEY": ENV_KEY}), ConfigSecrets({"claude": CONFIG_KEY})
    )

    from_env = await keys.key_of("openai-eu", env("OPENAI_KEY"))
    from_config = await keys.key_of("anthropic-eu", secret("claude"))
    get_logger("test").info(f"keys {from_env} and {from_config}", key=from_config)

    assert (from_env, from_config) == (ENV_KEY, CONFIG_KEY)
    written = log_stream.getvalue()
    assert ENV_KEY not in written
    assert CONFIG_KEY not in written
    assert orjson.loads(written.splitlines()[-1])["event"] == f"keys {MASK} and {MASK}"


async def test_a_secret_shared_by_deployments_is_read_once() -> None:
    config = ConfigSecrets({"shared": CONFIG_KEY})
    keys = ProviderKeys(EnvironmentSecrets({}), config)

    first = await keys.key_of("a", secret("shared"))
    second = await keys.key_of("b", secret("shared"))

    assert first == second == CONFIG_KEY
    assert config.reads == ["shared"]


@pytest.mark.parametrize(
    ("reference", "config", "where"),
    [
        (env("UNSET_KEY"), None, "the environment variable UNSET_KEY"),
        (env("EMPTY_KEY"), None, "the environment variable EMPTY_KEY"),
        (secret("claude"), None, "no config service is configured"),
        (secret("claude"), ConfigSecrets({}), "the config-service secret claude"),
        (secret("claude"), ConfigSecrets({"claude": ""}), "the config-service secret claude"),
    ],
    ids=["unset", "empty", "no-config-service", "no-such-secret", "empty-secret"],
)
async def test_a_missing_key_names_the_deployment_and_where_it_was_looked_for(
    reference: KeyReference, config: ConfigSecrets | None, where: str
) -> None:
    keys = ProviderKeys(EnvironmentSecrets({"EMPTY_KEY": ""}), config)

    with pytest.raises(FailedPreconditionError) as caught:
        await keys.key_of("claude-eu", reference)

    assert caught.value.reason == "PROVIDER_KEY_MISSING"
    assert "'claude-eu'" in caught.value.message
    assert where in caught.value.message
    assert caught.value.metadata == {
        "deployment": "claude-eu",
        "key_source": reference.source.value,
        "key_name": reference.name,
    }


async def test_a_config_service_that_fails_stops_the_build_with_its_reason() -> None:
    down = UnavailableError("The config service is not answering.")
    keys = ProviderKeys(EnvironmentSecrets({}), ConfigSecrets({}, failure=down))

    with pytest.raises(FailedPreconditionError) as caught:
        await keys.key_of("claude-eu", secret("claude"))

    assert caught.value.reason == "PROVIDER_KEY_UNREADABLE"
    assert caught.value.metadata["cause_reason"] == "UNAVAILABLE"
    assert caught.value.__cause__ is down


async def test_a_placeholder_too_short_to_mask_is_used_without_masking_ordinary_words(
    log_stream: io.StringIO,
) -> None:
    keys = ProviderKeys(EnvironmentSecrets({"LOCAL_KEY": "x"}))

    key = await keys.key_of("local-vllm", env("LOCAL_KEY"))
    get_logger("test").info("next request")

    assert key == "x"
    assert orjson.loads(log_stream.getvalue().splitlines()[-1])["event"] == "next request"


async def test_the_environment_source_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAINMAST_TEST_PROVIDER_KEY", ENV_KEY)

    assert await EnvironmentSecrets().get_secret("MAINMAST_TEST_PROVIDER_KEY") == ENV_KEY
    with pytest.raises(NotFoundError):
        await EnvironmentSecrets().get_secret("MAINMAST_TEST_UNSET_PROVIDER_KEY")
