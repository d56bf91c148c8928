"""A deployment whose key is looked up at every call, so that a rotated key is used at once.

A deployment keyed by a config-service secret is served by a `RotatingKeyAdapter`: each
call asks `ProviderKeys` for the key (the config client's cache answers, kept current by
its watch), and when the key is not the one the current adapter was made with, a new
adapter is made with it. That costs one small object: every adapter shares the service's
HTTP client, and a call already in flight keeps the key it started with.

A key that cannot be read fails the call before anything is sent to the provider, with the
error `ProviderKeys` raises; it is not the provider's failure, so the router gives the
deployment's breaker no verdict on it (see `Router._failed`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from ._adapter import ProviderAdapter
from ._completion import CompletionRequest, CompletionResponse, ProviderKind, StreamEvent
from ._provider_keys import ProviderKeys
from ._routing import Deployment, KeyReference

MakeAdapter = Callable[[str], ProviderAdapter]
"""Makes the deployment's adapter with the key given."""


class RotatingKeyAdapter:
    """The adapter of `deployment` (whose key is `reference`) with its current key.

    `make` builds the underlying adapter for a key; `keys` looks the key up at each call.
    """

    def __init__(
        self,
        deployment: Deployment,
        reference: KeyReference,
        *,
        keys: ProviderKeys,
        make: MakeAdapter,
    ) -> None:
        self._deployment = deployment
        self._reference = reference
        self._keys = keys
        self._make = make
        self._key: str | None = None
        self._adapter: ProviderAdapter | None = None

    @property
    def provider(self) -> ProviderKind:
        """The provider API the deployment speaks."""
        return self._deployment.provider

    @property
    def model(self) -> str:
        """The provider's model name the deployment asks for."""
        return self._deployment.model

    async def complete(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> CompletionResponse:
        """The whole completion, with the key current when the call began."""
        adapter = await self._current(deadline)
        return await adapter.complete(request, deadline=deadline)

    async def stream(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """TextDeltas, then the CompletionResponse, with the key current when the call began."""
        adapter = await self._current(deadline)
        events = adapter.stream(request, deadline=deadline)
        try:
            async for event in events:
                yield event
        finally:
            # Closing this stream closes the adapter's, and with it the provider request.
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def _current(self, deadline: float | None) -> ProviderAdapter:
        key = await self._keys.key_of(self._deployment.name, self._reference, deadline=deadline)
        if self._adapter is None or key != self._key:
            self._adapter = self._make(key)
            self._key = key
        return self._adapter

    def __repr__(self) -> str:
        # Never the key: an adapter may end up in a log line or a traceback.
        return f"RotatingKeyAdapter(deployment={self._deployment.name!r})"
