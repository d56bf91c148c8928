"""`mainmast-llm`: the command line of the llm service."""

from __future__ import annotations

from mainmast.runtime import service_cli

from .service import LlmService
from .settings import LlmSettings


def main() -> None:
    """Run `mainmast-llm` (`serve`, and the service's administrative commands)."""
    service_cli(LlmService, LlmSettings)()
