"""The adapters of a routing table: one per deployment, its key looked up where the file says.

Keys are looked up through `ProviderKeys` (see `_provider_keys`). `{env: NAME}` keys are
read when the adapters are built: one that cannot be found stops the build with
FailedPreconditionError naming the deployment and where the key was looked for, never a
value, and so does a `{secret: NAME}` key without a config service. With one, a secret is
read at each call instead (`RotatingKeyAdapter`), so that the service starts while the
config service is down and a rotated key is used without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ._adapter import ProviderAdapter
from ._anthropic import ANTHROPIC_BASE_URL, AnthropicAdapter
from ._completion import ProviderKind
from ._dev import DevAdapter
from ._gemini import GEMINI_BASE_URL, GeminiAdapter
from ._ollama import OLLAMA_BASE_URL, OllamaAdapter
from ._openai import AZURE_API_VERSION, OPENAI_BASE_URL, AzureOpenAIAdapter, OpenAIAdapter
from ._provider_keys import EnvironmentSecrets, ProviderKeys, SecretSource
from ._rotating_key import RotatingKeyAdapter
from ._routing import Deployment, RoutingTable


async def build_adapters(
    routing: RoutingTable,
    client: httpx.AsyncClient,
    *,
    environ: Mapping[str, str] | None = None,
    secrets: SecretSource | None = None,
) -> dict[str, ProviderAdapter]:
    """An adapter for every deployment of `routing`, by deployment name, all on `client`.

    `{env: NAME}` keys are read from `environ` (the process environment when None),
    `{secret: NAME}` keys from `secrets` at each call (None: no config service, so they
    are missing).
    """
    keys = ProviderKeys(EnvironmentSecrets(environ), secrets)
    adapters: dict[str, ProviderAdapter] = {}
    for alias in routing.aliases.values():
        for deployment in alias.deployments:
            adapters[deployment.name] = await _adapter_of(deployment, client, keys)
    return adapters


async def _adapter_of(
    deployment: Deployment, client: httpx.AsyncClient, keys: ProviderKeys
) -> ProviderAdapter:
    reference = deployment.key
    if reference is None:
        return create_adapter(deployment, client, api_key=None)
    if keys.follows_rotation(reference):
        return RotatingKeyAdapter(
            deployment,
            reference,
            keys=keys,
            make=lambda key: create_adapter(deployment, client, api_key=key),
        )
    return create_adapter(deployment, client, api_key=await keys.key_of(deployment.name, reference))


def create_adapter(
    deployment: Deployment, client: httpx.AsyncClient, *, api_key: str | None
) -> ProviderAdapter:
    """The adapter that speaks to `deployment`, with its key already looked up."""
    provider = deployment.provider
    if provider is ProviderKind.DEV:
        return DevAdapter()
    if provider is ProviderKind.OLLAMA:
        return OllamaAdapter(
            client, model=deployment.model, base_url=deployment.base_url or OLLAMA_BASE_URL
        )
    if provider is ProviderKind.OPENAI:
        return OpenAIAdapter(
            client,
            model=deployment.model,
            api_key=api_key,
            base_url=deployment.base_url or OPENAI_BASE_URL,
        )
    key = _required(deployment, api_key)
    if provider is ProviderKind.AZURE_OPENAI:
        if deployment.endpoint is None or deployment.azure_deployment is None:
            raise ValueError(f"the azure_openai deployment {deployment.name!r} needs an endpoint")
        return AzureOpenAIAdapter(
            client,
            endpoint=deployment.endpoint,
            deployment=deployment.azure_deployment,
            api_key=key,
            api_version=deployment.api_version or AZURE_API_VERSION,
        )
    if provider is ProviderKind.ANTHROPIC:
        return AnthropicAdapter(
            client,
            model=deployment.model,
            api_key=key,
            base_url=deployment.base_url or ANTHROPIC_BASE_URL,
        )
    return GeminiAdapter(
        client, model=deployment.model, api_key=key, base_url=deployment.base_url or GEMINI_BASE_URL
    )


def _required(deployment: Deployment, api_key: str | None) -> str:
    if not api_key:
        raise ValueError(
            f"the {deployment.provider.value} deployment {deployment.name!r} needs a key"
        )
    return api_key
