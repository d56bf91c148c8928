"""The adapters of a routing table: one per deployment, its key looked up where the file says.

Keys are read once, when the adapters are built: from the environment for `{env: NAME}`,
through `secret_lookup` (the config service) for `{secret: NAME}`. A key that cannot be
found stops the build with FailedPreconditionError naming the deployment and where the
key was looked for, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping

import httpx

from mainmast.errors import FailedPreconditionError

from ._adapter import ProviderAdapter
from ._anthropic import ANTHROPIC_BASE_URL, AnthropicAdapter
from ._completion import LLM_ERROR_DOMAIN, ProviderKind
from ._dev import DevAdapter
from ._gemini import GEMINI_BASE_URL, GeminiAdapter
from ._ollama import OLLAMA_BASE_URL, OllamaAdapter
from ._openai import AZURE_API_VERSION, OPENAI_BASE_URL, AzureOpenAIAdapter, OpenAIAdapter
from ._routing import Deployment, KeyReference, KeySource, RoutingTable

SecretLookup = Callable[[str], Awaitable[str | None]]
"""Reads a config-service secret by name; None when there is no such secret."""


async def build_adapters(
    routing: RoutingTable,
    client: httpx.AsyncClient,
    *,
    environ: Mapping[str, str] | None = None,
    secret_lookup: SecretLookup | None = None,
) -> dict[str, ProviderAdapter]:
    """An adapter for every deployment of `routing`, by deployment name, all on `client`.

    `environ` defaults to the process environment.
    """
    environment = os.environ if environ is None else environ
    adapters: dict[str, ProviderAdapter] = {}
    for alias in routing.aliases.values():
        for deployment in alias.deployments:
            key = None
            if deployment.key is not None:
                key = await _key_of(deployment, deployment.key, environment, secret_lookup)
            adapters[deployment.name] = create_adapter(deployment, client, api_key=key)
    return adapters


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


async def _key_of(
    deployment: Deployment,
    reference: KeyReference,
    environment: Mapping[str, str],
    secret_lookup: SecretLookup | None,
) -> str:
    if reference.source is KeySource.ENVIRONMENT:
        value = environment.get(reference.name)
        where = f"the environment variable {reference.name}"
    elif secret_lookup is None:
        value = None
        where = f"the config-service secret {reference.name} (no config service is configured)"
    else:
        value = await secret_lookup(reference.name)
        where = f"the config-service secret {reference.name}"
    if not value:
        raise FailedPreconditionError(
            f"The key of the deployment {deployment.name!r} is missing: {where} is not set.",
            reason="PROVIDER_KEY_MISSING",
            domain=LLM_ERROR_DOMAIN,
            metadata={
                "deployment": deployment.name,
                "key_source": reference.source.value,
                "key_name": reference.name,
            },
        )
    return value
