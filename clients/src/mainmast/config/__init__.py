"""mainmast.config: the config service's client and its contract.

`ConfigClient` (async) reads secrets (`get_secret`, `get_secrets`, `list_secrets`),
typed settings (`get_setting(name, int)`) and watches secrets for rotation (`watch`, an
async iterator that reconnects on its own), with a client-side cache and a bearer token
that may come from an async provider. Every secret value it returns is registered with
`mainmast.logging.register_secret`, so no log line of the process prints it. Results
are frozen dataclasses (`SecretValue`, `SecretMetadata`, `SecretChange`); failures are
mainmast errors with the service's reasons.

The generated v1 contract is in `mainmast.config.v1`.
"""

from mainmast._grpc_client import TokenProvider
from mainmast.config._client import (
    CONFIG_CLIENT_DOMAIN,
    MAX_BATCH_ITEMS,
    ConfigClient,
    ConfigClientConfig,
    JsonValue,
)
from mainmast.config._results import (
    Backend,
    CacheState,
    ChangeType,
    SecretChange,
    SecretMetadata,
    SecretValue,
)

__all__ = [
    "CONFIG_CLIENT_DOMAIN",
    "MAX_BATCH_ITEMS",
    "Backend",
    "CacheState",
    "ChangeType",
    "ConfigClient",
    "ConfigClientConfig",
    "JsonValue",
    "SecretChange",
    "SecretMetadata",
    "SecretValue",
    "TokenProvider",
]
