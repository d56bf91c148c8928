"""mainmast.llm: the llm service's client and its contract.

`LlmClient` (async) completes prompts or conversations through the service's model
aliases with fallback (`complete`), streams them (`stream`: `TextDelta`s, then the
`Completion` with its usage), lists the aliases (`list_models`) and reads the usage
ledger (`get_usage`). Results are frozen dataclasses; failures are mainmast errors
carrying the service's reasons (`LLM_ERROR_DOMAIN`)::

    async with LlmClient("127.0.0.1:50053", bearer_token=token) as llm:
        answer = await llm.complete(
            prompt="Summarize this document", model="gpt-4", fallback_model="llama2"
        )

The generated v1 contract is in `mainmast.llm.v1`.
"""

from mainmast._grpc_client import BearerToken
from mainmast.llm._client import LLM_ERROR_DOMAIN, LlmClient, LlmClientConfig
from mainmast.llm._results import (
    Attempt,
    AttemptOutcome,
    Completion,
    DailyUsage,
    Deployment,
    FinishReason,
    Message,
    Model,
    Provider,
    Role,
    StreamEvent,
    TextDelta,
    Usage,
)

__all__ = [
    "LLM_ERROR_DOMAIN",
    "Attempt",
    "AttemptOutcome",
    "BearerToken",
    "Completion",
    "DailyUsage",
    "Deployment",
    "FinishReason",
    "LlmClient",
    "LlmClientConfig",
    "Message",
    "Model",
    "Provider",
    "Role",
    "StreamEvent",
    "TextDelta",
    "Usage",
]
