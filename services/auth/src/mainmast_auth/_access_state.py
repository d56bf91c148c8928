"""What makes a correctly signed access token unacceptable, held in memory.

A token that verifies (signature, claims, times) is still refused when its jti was
revoked, when its subject's tokens issued before some time were revoked, or when its
subject or the subject's tenant is disabled. `AccessState` answers those questions with
dictionary and set lookups, so authenticating a call reads nothing from the database;
`AccessStateSync` keeps it in step with the store.

Memory follows the live tokens, not the history: a revoked jti is kept until its token
could no longer verify anyway (its expiry plus the verifiers' leeway), a subject's
revocation until every token issued before it has expired (one token lifetime plus the
leeway later). `prune` forgets the rest. Disabled principals and tenants are kept for
as long as they are disabled (principals are never deleted, only disabled, so a token
the service signed names a principal that exists).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from mainmast.auth import AuthErrorReason

from ._resource_names import PrincipalKind

# A sweep over every entry costs O(entries); doing it at most this often keeps the
# per-poll cost flat while memory stays within a minute of the bound.
_PRUNE_INTERVAL_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class AccessSnapshot:
    """Every revocation in force and every disabled tenant and principal, as stored."""

    version: int
    """The access-state version read before the rest: a change racing the load is newer."""
    revoked_token_ids: dict[str, datetime] = field(default_factory=dict)
    """Revoked jti -> the expiry of its token (or a bound on it)."""
    subject_cutoffs: dict[str, datetime] = field(default_factory=dict)
    """Subject -> not-before: its tokens issued before that time are revoked."""
    disabled: frozenset[str] = frozenset()
    """Resource names of the disabled tenants, users and service accounts."""


class AccessState:
    """Revocations and disabled principals, answering `refusal` without I/O.

    `token_lifetime` and `leeway` bound how long an entry can matter (see the module
    docstring); entries past that are pruned.
    """

    __slots__ = ("_disabled", "_leeway", "_next_prune", "_revoked", "_subject_cutoffs", "_window")

    def __init__(self, *, token_lifetime: timedelta, leeway: timedelta) -> None:
        if token_lifetime <= timedelta(0) or leeway < timedelta(0):
            raise ValueError("token_lifetime is positive and leeway is not negative")
        self._leeway = leeway.total_seconds()
        self._window = (token_lifetime + leeway).total_seconds()
        # jti -> when the entry can be forgotten (seconds since the epoch).
        self._revoked: dict[str, float] = {}
        # subject -> not-before (seconds since the epoch).
        self._subject_cutoffs: dict[str, float] = {}
        self._disabled: set[str] = set()
        self._next_prune = float("-inf")

    def __len__(self) -> int:
        """How many entries are held (revoked jtis, subject cutoffs, disabled names)."""
        return len(self._revoked) + len(self._subject_cutoffs) + len(self._disabled)

    def refusal(
        self, *, token_id: str, subject: str, tenant: str, issued_at: float, kind: PrincipalKind
    ) -> AuthErrorReason | None:
        """Why a verified token of `subject` (a principal of `kind` in `tenant`) must be
        refused, or None when nothing stands against it."""
        if token_id in self._revoked:
            return AuthErrorReason.TOKEN_REVOKED
        cutoff = self._subject_cutoffs.get(subject)
        if cutoff is not None and issued_at < cutoff:
            return AuthErrorReason.TOKEN_REVOKED
        if tenant in self._disabled:
            return AuthErrorReason.TENANT_DISABLED
        if subject in self._disabled:
            if kind is PrincipalKind.USER:
                return AuthErrorReason.USER_DISABLED
            return AuthErrorReason.SERVICE_ACCOUNT_DISABLED
        return None

    def replace(self, snapshot: AccessSnapshot, *, now: datetime) -> None:
        """Hold exactly what `snapshot` holds (less what no longer matters at `now`)."""
        self._revoked = {}
        self._subject_cutoffs = {}
        self._disabled = set(snapshot.disabled)
        for token_id, expire_time in snapshot.revoked_token_ids.items():
            self.revoke_token(token_id, expire_time)
        for subject, not_before in snapshot.subject_cutoffs.items():
            self.revoke_subject(subject, not_before)
        self._next_prune = float("-inf")
        self.prune(now)

    def revoke_token(self, token_id: str, expire_time: datetime) -> None:
        """Refuse the token `token_id`, which expires at `expire_time`."""
        forget_at = expire_time.timestamp() + self._leeway
        self._revoked[token_id] = max(forget_at, self._revoked.get(token_id, forget_at))

    def revoke_subject(self, subject: str, not_before: datetime) -> None:
        """Refuse the tokens of `subject` issued before `not_before` (which only moves on)."""
        cutoff = not_before.timestamp()
        self._subject_cutoffs[subject] = max(cutoff, self._subject_cutoffs.get(subject, cutoff))

    def disable(self, names: Iterable[str]) -> None:
        """Refuse the tokens of these principals, or of every principal of these tenants."""
        self._disabled.update(names)

    def prune(self, now: datetime) -> int:
        """Forget the revocations that can no longer matter at `now`, at most once a minute
        (a no-op in between); how many were forgotten."""
        moment = now.timestamp()
        if moment < self._next_prune:
            return 0
        self._next_prune = moment + _PRUNE_INTERVAL_SECONDS
        before = len(self._revoked) + len(self._subject_cutoffs)
        self._revoked = {key: at for key, at in self._revoked.items() if at > moment}
        self._subject_cutoffs = {
            subject: cutoff
            for subject, cutoff in self._subject_cutoffs.items()
            if cutoff + self._window > moment
        }
        return before - len(self._revoked) - len(self._subject_cutoffs)
