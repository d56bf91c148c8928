"""Idempotent mutations: a `request_id` makes a retry return the first call's outcome.

The contract lets a caller send an optional `request_id` (a UUID) with a mutation
(AIP-155). The mutations whose repeat would do something again (create a second tenant,
user or service account, set the password and revoke refresh tokens again, rotate the
key again, move a subject's revocation time on) run through `RequestRecords.run`: in the
mutation's own transaction, a record of (caller, request_id) is looked up first and, when
there is none, written with the outcome, so the record exists exactly when the mutation
committed. Within `RECORD_LIFETIME` (24 hours):

- the same caller sending the same request_id for the same request gets the first
  outcome back, and nothing is done again;
- the same request_id for a different request (another method, or other fields) is
  FailedPreconditionError: a request id names one request;
- another caller's request_id is another request altogether.

A request is identified by a SHA-256 fingerprint of its method and fields. Passwords are
never part of it (a fast hash of a password must not be stored next to its argon2id
hash): a retry that changed only the password counts as the same request.

The outcome recorded is what the first call produced, in a few words: the name of the
resource it created or changed (a retry answers with that resource as it is now; for a
service account that is without the client secret, which is shown once and stored only
as a hash), the time a revocation took effect, the key ids of a rotation.

Two calls with one request_id at the same time both find no record; the second's record
then conflicts with the first's (the primary key), its transaction is rolled back with
its mutation, and it answers with the first's outcome. A mutation that fails with
AlreadyExistsError or ConflictError looks for such a record the same way before giving
up.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, TypeVar

import orjson
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from mainmast.db import DatabasePool
from mainmast.errors import ConflictError, FailedPreconditionError, FieldViolation, ValidationError

from ._models import RequestRecordRow
from ._store_common import flush_new

T = TypeVar("T")

RECORD_LIFETIME: Final = timedelta(hours=24)
"""How long a request_id is remembered for its caller."""

_REQUEST_ID_FIELD: Final = "request_id"


def _invalid_request_id() -> ValidationError:
    description = "A request_id is a UUID, such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427."
    return ValidationError(
        description,
        field_violations=[FieldViolation(_REQUEST_ID_FIELD, description)],
        metadata={"field": _REQUEST_ID_FIELD},
    )


@dataclass(frozen=True, slots=True)
class RequestKey:
    """One caller's request_id for one request."""

    caller: str
    """The subject that sent the request."""
    request_id: str
    """The request_id, as a canonical UUID."""
    method: str
    """The contract's method name, e.g. `CreateTenant`."""
    fingerprint: str
    """SHA-256 (hex) of the method and the request's fields."""

    @classmethod
    def of(cls, caller: str, request_id: str, method: str, **fields: str) -> RequestKey | None:
        """The key of a request, or None when it has no request_id; ValidationError when
        the request_id is not a UUID. `fields` must leave out passwords and secrets."""
        if not request_id:
            return None
        try:
            canonical = str(uuid.UUID(request_id))
        except ValueError as exc:
            raise _invalid_request_id() from exc
        document = orjson.dumps([method, fields], option=orjson.OPT_SORT_KEYS)
        return cls(caller, canonical, method, hashlib.sha256(document).hexdigest())


@dataclass(frozen=True, slots=True)
class Ran(Generic[T]):
    """What `RequestRecords.run` returns."""

    value: T
    """The mutation's result, or the replay of the first call's."""
    replayed: bool
    """True when nothing was done because a first call with this request_id had been."""


def _reused(key: RequestKey) -> FailedPreconditionError:
    return FailedPreconditionError(
        "This request_id was sent before with a different request; a request_id names one "
        "request: use a new one for a new request.",
        metadata={"field": _REQUEST_ID_FIELD, _REQUEST_ID_FIELD: key.request_id},
    )


async def _first_outcome(session: AsyncSession, key: RequestKey, *, now: datetime) -> str | None:
    row = await session.get(RequestRecordRow, (key.caller, key.request_id))
    if row is None or row.expire_time <= now:
        return None
    if row.method != key.method or row.fingerprint != key.fingerprint:
        raise _reused(key)
    return row.outcome


async def _remember(session: AsyncSession, key: RequestKey, outcome: str, *, now: datetime) -> None:
    # Forgetting what has expired here keeps the table at a day of records, and frees this
    # key if its earlier use has expired.
    await session.execute(delete(RequestRecordRow).where(RequestRecordRow.expire_time <= now))
    session.add(
        RequestRecordRow(
            caller=key.caller,
            request_id=key.request_id,
            method=key.method,
            fingerprint=key.fingerprint,
            outcome=outcome,
            create_time=now,
            expire_time=now + RECORD_LIFETIME,
        )
    )
    await flush_new(session, "RequestRecord", key.request_id)


class RequestRecords:
    """Runs mutations so that a request_id's retry replays the first outcome."""

    __slots__ = ("_database",)

    def __init__(self, database: DatabasePool) -> None:
        self._database = database

    async def run(
        self,
        key: RequestKey | None,
        mutate: Callable[[AsyncSession], Awaitable[tuple[T, str]]],
        replay: Callable[[str], Awaitable[T]],
    ) -> Ran[T]:
        """`mutate(session)` in a transaction of its own, returning its result and the
        outcome to record; or, when `key` names a request made before, `replay(outcome)`
        of the first call. Without a key the mutation just runs."""
        now = datetime.now(UTC)
        try:
            async with self._database.session() as session:
                outcome = None if key is None else await _first_outcome(session, key, now=now)
                if outcome is None:
                    value, outcome = await mutate(session)
                    if key is not None:
                        await _remember(session, key, outcome, now=now)
                    return Ran(value, replayed=False)
        except ConflictError:
            if key is None:
                raise
            # Maybe a concurrent call with this request_id committed first.
            async with self._database.session() as session:
                outcome = await _first_outcome(session, key, now=now)
            if outcome is None:
                raise
        return Ran(await replay(outcome), replayed=True)
