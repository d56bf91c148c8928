"""The audit record of every access to a secret or setting, logged without the value.

One log event, `config.access`, per access: who asked (caller and tenant), for what (kind
and name), the decision (allowed or denied), and for an allowed read what answered (version,
backend, cache state) or why it failed (the error's reason). The request id comes from the
logging context (`mainmast.logging.bind_context`), so the record joins the request's other
lines. A record is built from a `CachedSecret` but copies only its metadata: there is no
field a value could travel in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

import structlog

from mainmast.errors import MainmastError
from mainmast.logging import get_logger

from ._backend import BackendKind, SecretRecord
from ._cache import CachedSecret, CacheState

AUDIT_LOGGER: Final = "mainmast_config.audit"
"""The logger name of audit records, for routing them to their own sink."""
AUDIT_EVENT: Final = "config.access"
"""The event of every audit record."""


class AccessDecision(enum.StrEnum):
    """Whether the caller was allowed to read the name."""

    ALLOWED = "allowed"
    """Authorised; the read was attempted."""
    DENIED = "denied"
    """Not authorised; nothing was read."""


class AccessKind(enum.StrEnum):
    """What was accessed."""

    SECRET = "secret"  # noqa: S105 -- a kind of resource, not a password
    """A secret."""
    SETTING = "setting"
    """A setting."""
    SECRET_LIST = "secret-list"  # noqa: S105 -- a kind of resource, not a password
    """A listing of secret names (never values); the record's name is the prefix asked for."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One access, as audited; it has no field for a value."""

    caller: str
    """The authenticated subject that asked."""
    tenant: str
    """The caller's tenant."""
    kind: AccessKind
    """Secret or setting."""
    name: str
    """The name asked for."""
    decision: AccessDecision
    """Allowed or denied."""
    version: str = ""
    """The version answered; empty when nothing was answered."""
    backend: BackendKind | None = None
    """The backend that answered."""
    cache_state: CacheState | None = None
    """How the cache answered; None when the read bypassed it or nothing was answered."""
    error_reason: str = ""
    """The reason of the error an allowed read failed with; empty when it succeeded."""
    request_id: str | None = None
    """The request id of the logging context."""

    def fields(self) -> dict[str, Any]:
        """The record as log event fields (enums as their values)."""
        return {
            "caller": self.caller,
            "tenant": self.tenant,
            "kind": self.kind.value,
            "name": self.name,
            "decision": self.decision.value,
            "version": self.version,
            "backend": self.backend.value if self.backend is not None else None,
            "cache_state": self.cache_state.value if self.cache_state is not None else None,
            "error_reason": self.error_reason,
            "request_id": self.request_id,
        }


class AccessAuditor:
    """Builds and logs the audit record of each access, through `mainmast.logging`."""

    __slots__ = ("_logger",)

    def __init__(self, logger_name: str = AUDIT_LOGGER) -> None:
        self._logger = get_logger(logger_name)

    def allowed(
        self,
        *,
        caller: str,
        tenant: str,
        name: str,
        answer: CachedSecret | SecretRecord,
        kind: AccessKind = AccessKind.SECRET,
    ) -> AuditRecord:
        """Log an allowed read that answered; `answer` is the cache's answer or a backend's
        record (a read past the cache). Its value is never read."""
        record, state = (
            (answer.record, answer.state) if isinstance(answer, CachedSecret) else (answer, None)
        )
        return self._log(
            AuditRecord(
                caller=caller,
                tenant=tenant,
                kind=kind,
                name=name,
                decision=AccessDecision.ALLOWED,
                version=record.version,
                backend=record.backend,
                cache_state=state,
                request_id=_request_id(),
            )
        )

    def failed(
        self,
        *,
        caller: str,
        tenant: str,
        name: str,
        error: MainmastError,
        kind: AccessKind = AccessKind.SECRET,
    ) -> AuditRecord:
        """Log an allowed read that failed (not found, backend trouble) with `error`."""
        return self._log(
            AuditRecord(
                caller=caller,
                tenant=tenant,
                kind=kind,
                name=name,
                decision=AccessDecision.ALLOWED,
                error_reason=error.reason,
                request_id=_request_id(),
            )
        )

    def listed(
        self, *, caller: str, tenant: str, name_prefix: str, error: MainmastError | None = None
    ) -> AuditRecord:
        """Log a listing of the secret names under `name_prefix` the caller may read, or the
        `error` it failed with."""
        return self._log(
            AuditRecord(
                caller=caller,
                tenant=tenant,
                kind=AccessKind.SECRET_LIST,
                name=name_prefix,
                decision=AccessDecision.ALLOWED,
                error_reason="" if error is None else error.reason,
                request_id=_request_id(),
            )
        )

    def denied(
        self, *, caller: str, tenant: str, name: str, kind: AccessKind = AccessKind.SECRET
    ) -> AuditRecord:
        """Log a read the caller was not allowed to make."""
        return self._log(
            AuditRecord(
                caller=caller,
                tenant=tenant,
                kind=kind,
                name=name,
                decision=AccessDecision.DENIED,
                request_id=_request_id(),
            )
        )

    def _log(self, record: AuditRecord) -> AuditRecord:
        # Denials are warnings: a burst of them is what an operator looks for.
        if record.decision is AccessDecision.DENIED:
            self._logger.warning(AUDIT_EVENT, **record.fields())
        else:
            self._logger.info(AUDIT_EVENT, **record.fields())
        return record


def _request_id() -> str | None:
    # Read from the context explicitly rather than left to the pipeline's context merge, so
    # the record carries it whichever processors a sink runs.
    value = structlog.contextvars.get_contextvars().get("request_id")
    return None if value is None else str(value)
