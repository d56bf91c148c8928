"""`mainmast-auth`: the command line of the auth service."""

from __future__ import annotations

from mainmast.runtime import service_cli

from .service import AuthService
from .settings import AuthSettings


def main() -> None:
    """Run `mainmast-auth` (`serve`, and the service's administrative commands)."""
    service_cli(AuthService, AuthSettings)()
