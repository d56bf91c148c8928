"""Provider keys: read from the environment once, from the config service at every call (so a
rotation is followed), the key read last used while the config service cannot be reached, and
masked in every log line from the moment they are read."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import orjson
import pytest
from structlog.testing import capture_logs

from mainmast.errors import (
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
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
        self.gate: asyncio.Event | None = None

    async def get_secret(self, name: str) -> str:
        self.reads.append(name)
        if self.gate is not None:
            await self.gate.wait()
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


async def test_an_environment_variable_is_read_once() -> None:
    environ = {"OPENAI_KEY": ENV_KEY}
    keys = ProviderKeys(EnvironmentSecrets(environ))

    first = await keys.key_of("a", env("OPENAI_KEY"))
    environ["OPENAI_KEY"] = "sk-changed-under-a-running-process"
    second = await keys.key_of("b", env("OPENAI_KEY"))

    assert first == second == ENV_KEY
    assert not keys.follows_rotation(env("OPENAI_KEY"))


async def test_a_secret_is_asked_for_at_every_call_so_a_rotated_key_is_used_at_once(
    log_stream: io.StringIO,
) -> None:
    rotated = CONFIG_KEY + "-rotated"
    config = ConfigSecrets({"shared": CONFIG_KEY})
    keys = ProviderKeys(EnvironmentSecrets({}), config)

    first = await keys.key_of("a", secret("shared"))
    config.values["shared"] = rotated
    second = await keys.key_of("b", secret("shared"))
    get_logger("test").info(f"rotated to {second}")

    assert (first, second) == (CONFIG_KEY, rotated)
    assert config.reads == ["shared", "shared"]
    assert keys.follows_rotation(secret("shared"))
    assert rotated not in log_stream.getvalue()


@pytest.mark.parametrize(
    ("reference", "config", "where"),
    [
        (env("UNSET_KEY"), None, "the environment variable UNSET_KEY"),
        (env("EMPTY_KEY"), None, "the environment variable EMPTY_KEY"),
        (secret("claude"), None, "no config service is configured: set MAINMAST_LLM_CONFIG_TARGET"),
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


async def test_a_config_service_that_refuses_the_read_is_unreadable_with_its_reason() -> None:
    denied = PermissionDeniedError(
        "The caller may not read the secret 'claude'.", reason="SECRET_ACCESS_DENIED"
    )
    keys = ProviderKeys(EnvironmentSecrets({}), ConfigSecrets({}, failure=denied))

    with pytest.raises(FailedPreconditionError) as caught:
        await keys.key_of("claude-eu", secret("claude"))

    assert caught.value.reason == "PROVIDER_KEY_UNREADABLE"
    assert caught.value.metadata["cause_reason"] == "SECRET_ACCESS_DENIED"
    assert "may not read the secret 'claude'" in caught.value.message
    assert caught.value.__cause__ is denied


async def test_an_unreachable_config_service_is_unavailable_until_a_key_was_read() -> None:
    down = UnavailableError("The config service is not answering.")
    config = ConfigSecrets({"claude": CONFIG_KEY}, failure=down)
    keys = ProviderKeys(EnvironmentSecrets({}), config)

    with pytest.raises(UnavailableError) as caught:
        await keys.key_of("claude-eu", secret("claude"))
    config.failure = None
    read = await keys.key_of("claude-eu", secret("claude"))

    assert caught.value.reason == "PROVIDER_KEY_UNAVAILABLE"
    assert caught.value.metadata == {
        "deployment": "claude-eu",
        "key_source": "secret",
        "key_name": "claude",
        "cause_reason": "UNAVAILABLE",
    }
    assert caught.value.__cause__ is down
    assert read == CONFIG_KEY
    assert config.reads == ["claude", "claude"]  # the failure was not remembered


async def test_the_key_read_last_serves_while_the_config_service_is_down() -> None:
    config = ConfigSecrets({"claude": CONFIG_KEY})
    keys = ProviderKeys(EnvironmentSecrets({}), config)
    await keys.key_of("claude-eu", secret("claude"))

    config.failure = UnavailableError("The config service is not answering.")
    with capture_logs() as logs:
        during = [await keys.key_of("claude-eu", secret("claude")) for _ in range(3)]
    config.failure = None
    config.values["claude"] = rotated = CONFIG_KEY + "-after"
    after = await keys.key_of("claude-eu", secret("claude"))

    assert during == [CONFIG_KEY] * 3
    assert after == rotated
    warnings = [entry for entry in logs if entry["event"] == "llm.provider_key_from_earlier_read"]
    assert len(warnings) == 1  # once per outage
    assert warnings[0]["cause_reason"] == "UNAVAILABLE"
    assert CONFIG_KEY not in str(logs)


async def test_a_read_that_outlasts_the_calls_deadline_is_unavailable() -> None:
    config = ConfigSecrets({"claude": CONFIG_KEY})
    config.gate = asyncio.Event()  # never set: the config service does not answer
    keys = ProviderKeys(EnvironmentSecrets({}), config)

    with pytest.raises(UnavailableError) as caught:
        await keys.key_of("claude-eu", secret("claude"), deadline=asyncio.get_running_loop().time())

    assert caught.value.reason == "PROVIDER_KEY_UNAVAILABLE"
    assert caught.value.metadata["cause_reason"] == "DEADLINE_EXCEEDED"


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
