"""The backend chain: order, fall-through on not-found only, and Retry-After hold-offs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mainmast.errors import NotFoundError, UnavailableError, ValidationError
from mainmast_config._backend import BackendKind, digest_version
from mainmast_config._chain import BackendChain
from mainmast_config._errors import backend_throttled, backend_unavailable
from mainmast_config._testing import FakeClock, ScriptedBackend


def _vault_env_dotenv() -> tuple[ScriptedBackend, ScriptedBackend, ScriptedBackend]:
    return (
        ScriptedBackend(BackendKind.KEY_VAULT, {"database-password": "from-vault"}),
        ScriptedBackend(BackendKind.ENVIRONMENT, {"database-password": "from-env", "api": "e"}),
        ScriptedBackend(BackendKind.DOTENV, {"only-dotenv": "d"}),
    )


async def test_the_first_backend_that_has_the_name_answers_and_is_named() -> None:
    vault, env, dotenv = _vault_env_dotenv()
    chain = BackendChain([vault, env, dotenv])
    record = await chain.get("database-password")
    assert (record.value, record.backend) == ("from-vault", BackendKind.KEY_VAULT)
    assert env.calls == 0
    record = await chain.get("only-dotenv")
    assert (record.value, record.backend) == ("d", BackendKind.DOTENV)
    assert (vault.calls, env.calls, dotenv.calls) == (2, 1, 1)


async def test_no_backend_with_the_name_is_secret_not_found() -> None:
    chain = BackendChain(_vault_env_dotenv())
    with pytest.raises(NotFoundError) as caught:
        await chain.get("nowhere")
    assert (caught.value.reason, caught.value.metadata) == ("SECRET_NOT_FOUND", {"name": "nowhere"})


async def test_a_backend_in_trouble_stops_the_chain_instead_of_falling_through() -> None:
    vault, env, dotenv = _vault_env_dotenv()
    vault.fail_next(backend_unavailable(BackendKind.KEY_VAULT, "down"))
    chain = BackendChain([vault, env, dotenv])
    with pytest.raises(UnavailableError):
        await chain.get("database-password")
    assert env.calls == 0


async def test_a_missing_version_in_the_backend_that_has_the_name_answers() -> None:
    vault, env, dotenv = _vault_env_dotenv()
    chain = BackendChain([env, vault, dotenv])
    with pytest.raises(NotFoundError) as caught:
        await chain.get("database-password", "not-a-version")
    assert caught.value.reason == "SECRET_VERSION_NOT_FOUND"
    assert vault.calls == 0
    record = await chain.get("database-password", digest_version("from-env"))
    assert record.value == "from-env"


async def test_an_empty_version_means_the_latest() -> None:
    chain = BackendChain([ScriptedBackend(BackendKind.ENVIRONMENT, {"a": "1"})])
    assert (await chain.get("a", "")).value == "1"


async def test_an_invalid_name_fails_before_any_backend_is_asked() -> None:
    vault, env, dotenv = _vault_env_dotenv()
    with pytest.raises(ValidationError) as caught:
        await BackendChain([vault, env, dotenv]).get("../etc/passwd")
    assert caught.value.reason == "INVALID_NAME"
    assert vault.calls == 0


async def test_no_call_reaches_a_backend_before_its_retry_after_has_passed(
    clock: FakeClock,
) -> None:
    vault, env, _ = _vault_env_dotenv()
    vault.fail_next(backend_throttled(BackendKind.KEY_VAULT, retry_after=30))
    chain = BackendChain([vault, env], clock=clock)
    with pytest.raises(UnavailableError):
        await chain.get("database-password")
    clock.advance(20)
    with pytest.raises(UnavailableError) as held:
        await chain.get("database-password")
    assert held.value.reason == "BACKEND_THROTTLED"
    assert held.value.retry_after == timedelta(seconds=10)
    assert vault.calls == 1
    clock.advance(10)
    assert (await chain.get("database-password")).value == "from-vault"
    assert vault.calls == 2


async def test_an_error_without_retry_after_holds_nothing_off(clock: FakeClock) -> None:
    vault, env, _ = _vault_env_dotenv()
    vault.fail_next(backend_unavailable(BackendKind.KEY_VAULT, "down"))
    chain = BackendChain([vault, env], clock=clock)
    with pytest.raises(UnavailableError):
        await chain.get("database-password")
    assert (await chain.get("database-password")).value == "from-vault"


async def test_listing_merges_names_sorted_with_the_backend_that_answers() -> None:
    chain = BackendChain(_vault_env_dotenv())
    assert await chain.list_names() == [
        ("api", BackendKind.ENVIRONMENT),
        ("database-password", BackendKind.KEY_VAULT),
        ("only-dotenv", BackendKind.DOTENV),
    ]


async def test_listing_fails_when_a_backend_fails() -> None:
    vault, env, dotenv = _vault_env_dotenv()
    env.fail_next(backend_unavailable(BackendKind.ENVIRONMENT, "broken"))
    with pytest.raises(UnavailableError):
        await BackendChain([vault, env, dotenv]).list_names()


async def test_closing_the_chain_closes_every_backend() -> None:
    backends = _vault_env_dotenv()
    await BackendChain(backends).aclose()
    assert all(backend.closed for backend in backends)


def test_a_chain_needs_backends_of_distinct_kinds() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BackendChain([])
    with pytest.raises(ValueError, match="each kind"):
        BackendChain([ScriptedBackend(BackendKind.FILES), ScriptedBackend(BackendKind.FILES)])
