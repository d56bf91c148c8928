"""The authentication hook: who is calling, decided before the servicer runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import grpc.aio

from mainmast.errors import UnauthenticatedError

from ._call_scope import bound_for_call, set_for_call
from ._wrapping import CallInterceptor, Metadata, MethodInfo


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a call."""

    tenant: str
    """The tenant the caller acts in."""
    subject: str
    """Who the caller is: a user id or a service account id."""
    roles: tuple[str, ...] = ()
    """The roles the caller's credential carries (resource names), when it carries any."""
    credential: str | None = field(default=None, repr=False, compare=False)
    """The bearer token the caller authenticated with, so a service can ask the auth
    service about this caller on its behalf (never printed: kept out of repr)."""


Authenticate = Callable[[str, Metadata], Awaitable[Principal]]
"""The hook a service supplies: `(full_method, invocation_metadata) -> Principal`.

It raises `mainmast.errors.UnauthenticatedError` when the caller cannot be
authenticated (any other `MainmastError` is answered as well, for example
UnavailableError when a key store is down).
"""

# One per process, like structlog's contextvars: a context variable holds a value
# per call (per asyncio task), not shared state.
_CURRENT_PRINCIPAL: ContextVar[Principal | None] = ContextVar(
    "mainmast_current_principal", default=None
)


def current_principal() -> Principal:
    """The principal of the call being served.

    Raises UnauthenticatedError outside an authenticated call (for example in a
    method the service exempted from authentication).
    """
    principal = _CURRENT_PRINCIPAL.get()
    if principal is None:
        raise UnauthenticatedError("This call is not authenticated.")
    return principal


def validated_methods(methods: Iterable[str]) -> frozenset[str]:
    """Return `methods` as a frozenset; ValueError unless each is `/package.Service/Method`."""
    validated = frozenset(methods)
    for method in validated:
        service, _, name = method.removeprefix("/").rpartition("/")
        if not method.startswith("/") or not service or not name:
            raise ValueError(
                f"exempt method {method!r} is not a full method path like "
                "'/mainmast.auth.v1.AuthService/IssueToken'"
            )
    return validated


class AuthInterceptor(CallInterceptor):
    """Authenticate every call with a hook, except the exempt methods.

    The hook's principal is available to the servicer through `current_principal()`
    and its tenant and subject are bound into the logging context for the call.
    """

    def __init__(self, authenticate: Authenticate, exempt_methods: Iterable[str] = ()) -> None:
        self._authenticate = authenticate
        self._exempt_methods = validated_methods(exempt_methods)

    @asynccontextmanager
    async def around(
        self, info: MethodInfo, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        """Run the hook, then the servicer with the principal bound."""
        if info.method in self._exempt_methods:
            yield
            return
        principal = await self._authenticate(info.method, info.invocation_metadata)
        with (
            set_for_call(_CURRENT_PRINCIPAL, principal),
            bound_for_call(tenant=principal.tenant, subject=principal.subject),
        ):
            yield
