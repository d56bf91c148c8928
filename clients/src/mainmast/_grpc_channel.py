"""The grpc.aio channel of an SDK client: plaintext or TLS, with the tracing interceptors."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import grpc.aio

from mainmast.tracing import client_interceptors


def open_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, str | int]] = (),
) -> grpc.aio.Channel:
    """A channel to `target`: TLS with `credentials`, plaintext without (loopback, a mesh).

    It carries a client span per call when tracing is set up, and belongs to the running
    event loop: open it inside the loop that uses it.
    """
    interceptors = client_interceptors()
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
