"""The gRPC services every server runs for operators: health checking and reflection.

They stay out of the runtime's interceptors, metrics, logs and traces; this is the
one list both the runtime and tracing read.
"""

from __future__ import annotations

from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

INFRASTRUCTURE_SERVICES = frozenset(
    {health.SERVICE_NAME, reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"}
)
"""Full names of the health and reflection services (both reflection versions)."""


def split_method(method: str) -> tuple[str, str]:
    """Split `/package.Service/Method` into (`package.Service`, `Method`)."""
    service, _, name = method.removeprefix("/").rpartition("/")
    return service, name


def is_infrastructure_method(method: str) -> bool:
    """Tell whether a full method path belongs to health checking or reflection."""
    return split_method(method)[0] in INFRASTRUCTURE_SERVICES
