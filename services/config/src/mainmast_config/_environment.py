"""Secrets from environment variables: `database-password` is `DATABASE_PASSWORD`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._backend import BackendKind, SecretRecord, versionless_record
from ._errors import secret_not_found
from ._names import environment_variable, name_of_environment_variable


class EnvironmentBackend:
    """Reads secrets from the process environment (or any mapping), live on every call.

    With a `prefix` such as `APP_`, `database-password` is `APP_DATABASE_PASSWORD` and
    variables without the prefix are neither read nor listed. Without one, every variable
    whose name maps to a valid name is listed.
    """

    __slots__ = ("_environ", "_prefix")

    def __init__(self, *, prefix: str = "", environ: Mapping[str, str] | None = None) -> None:
        if prefix and not prefix.replace("_", "").isalnum():
            raise ValueError("an environment prefix has only letters, digits and '_'")
        self._prefix = prefix
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    @property
    def kind(self) -> BackendKind:
        """BackendKind.ENVIRONMENT."""
        return BackendKind.ENVIRONMENT

    async def get(self, name: str, version: str | None = None) -> SecretRecord:
        """The value of the variable that holds `name`; NotFoundError when it is not set."""
        value = self._environ.get(environment_variable(name, self._prefix))
        if value is None:
            raise secret_not_found(name)
        return versionless_record(name, value, self.kind, version)

    async def list_names(self) -> list[str]:
        """The names the environment's variables hold."""
        names = (name_of_environment_variable(variable, self._prefix) for variable in self._environ)
        return [name for name in names if name is not None]

    async def aclose(self) -> None:
        """Nothing to release."""
