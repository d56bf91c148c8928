"""`mainmast-config`: the command line of the config service."""

from __future__ import annotations

from mainmast.runtime import service_cli

from .service import ConfigService
from .settings import ConfigSettings


def main() -> None:
    """Run `mainmast-config` (`serve`, and the service's administrative commands)."""
    service_cli(ConfigService, ConfigSettings)()
