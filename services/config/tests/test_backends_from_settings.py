"""The backends the settings describe: the order, the prefix, the .env file, the files
directory, Key Vault with the settings' timeouts against the local vault, and the
azure-identity credential each choice makes, on first use only."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.identity import aio as identity

from mainmast_config._backend import BackendKind
from mainmast_config._backends_from_settings import (
    backends_from_settings,
    key_vault_credential_factory,
)
from mainmast_config._chain import BackendChain
from mainmast_config._key_vault import KeyVaultBackend
from mainmast_config._local_key_vault import LocalKeyVault
from mainmast_config._testing import VaultCredential
from mainmast_config.settings import ConfigSettings, KeyVaultCredentialKind


async def test_the_chain_reads_every_configured_backend_in_order(tmp_path: Path) -> None:
    (tmp_path / "files" / "payments").mkdir(parents=True)
    (tmp_path / "files" / "payments" / "stripe-key").write_text("from-the-files-dir\n")
    (tmp_path / ".env").write_text("APP_SMTP_PASSWORD=from-the-dotenv-file\n")
    settings = ConfigSettings(
        files_dir=tmp_path / "files", env_prefix="APP_", dotenv_path=tmp_path / ".env"
    )
    backends = backends_from_settings(settings, environ={"APP_DATABASE_PASSWORD": "from-env"})
    chain = BackendChain(backends)

    assert [backend.kind for backend in backends] == [
        BackendKind.FILES,
        BackendKind.ENVIRONMENT,
        BackendKind.DOTENV,
    ]
    read = {
        name: ((await chain.get(name)).value, (await chain.get(name)).backend)
        for name in ("payments/stripe-key", "database-password", "smtp-password")
    }
    assert read == {
        "payments/stripe-key": ("from-the-files-dir", BackendKind.FILES),
        "database-password": ("from-env", BackendKind.ENVIRONMENT),
        "smtp-password": ("from-the-dotenv-file", BackendKind.DOTENV),
    }


async def test_key_vault_comes_first_with_the_settings_options(
    vault: LocalKeyVault, credential: VaultCredential
) -> None:
    vault.set_secret("database-password", "from-the-local-vault")
    settings = ConfigSettings(
        key_vault_url=vault.url,
        key_vault_ca_bundle=Path(vault.ca_path),
        key_vault_verify_challenge_resource=False,
        key_vault_read_timeout_seconds=2.0,
    )
    backends = backends_from_settings(
        settings, key_vault_credential=credential, environ={"DATABASE_PASSWORD": "from-env"}
    )
    chain = BackendChain(backends)
    try:
        record = await chain.get("database-password")
    finally:
        await chain.aclose()

    assert isinstance(backends[0], KeyVaultBackend)
    assert backends[0].vault_url == vault.url
    assert (record.value, record.backend) == ("from-the-local-vault", BackendKind.KEY_VAULT)
    assert not credential.closed  # the caller's credential stays the caller's to close


@pytest.mark.parametrize(
    ("kind", "credential_class"),
    [
        ("default", identity.DefaultAzureCredential),
        ("managed_identity", identity.ManagedIdentityCredential),
        ("azure_cli", identity.AzureCliCredential),
        ("environment", identity.EnvironmentCredential),
        ("workload_identity", identity.WorkloadIdentityCredential),
    ],
)
async def test_each_credential_choice_makes_its_azure_identity_credential(
    kind: KeyVaultCredentialKind,
    credential_class: type[object],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # What workload identity reads from the pod's environment in Kubernetes.
    token_file = tmp_path / "token"
    token_file.write_text("a-federated-token")
    monkeypatch.setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000000")
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-1111-1111-1111-111111111111")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))

    credential = key_vault_credential_factory(kind, managed_identity_client_id=None)()
    try:
        assert isinstance(credential, credential_class)
    finally:
        await credential.close()


def test_the_credential_is_made_on_first_use_not_when_the_backend_is_built() -> None:
    made: list[str] = []
    settings = ConfigSettings(key_vault_url="https://acme.vault.azure.net")

    def factory(kind: KeyVaultCredentialKind, **_options: object) -> object:
        made.append(kind)
        raise AssertionError("a credential was made while building the chain")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "mainmast_config._backends_from_settings.key_vault_credential_factory",
            lambda kind, **options: lambda: factory(kind, **options),
        )
        backends = backends_from_settings(settings, environ={})

    assert isinstance(backends[0], KeyVaultBackend)
    assert made == []
