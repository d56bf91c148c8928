"""The LlmService servicer: completions through the router, under quotas, into the ledger.

Permissions, checked with the auth service for the caller's own tenant (see
`CallerAuthentication`): Complete and StreamComplete need `llm:complete`, ListModels
`llm:read`, GetUsage `llm-usage:read`; GetUsage of another tenant, or of every tenant
(`tenants/-`), needs the platform-admin role too. With `auth_required=false` every caller
is the dev principal and holds them all.

Each completion call, in order: the caller's permission; the request and its model
aliases checked; the tenant's quotas reserved for an estimate; the router run under the
call's gRPC deadline; the reservation settled with the tokens really used (shielded, so
a cancelled call still gives back what it did not use); and the call recorded in the
usage ledger.

The ledger records every call a caller was allowed to make, however it ended: succeeded,
failed at the providers (under its last attempt's deployment), refused by the tenant's
quotas (QUOTA_EXCEEDED), refused as invalid or for an unknown model (REJECTED), out of
time, or cancelled. One that ended before any deployment was tried has no deployment,
provider or model. A caller without a valid token, or without `llm:complete`, made no
call: it is refused before anything is counted or recorded, and the refusal is logged.
Recording it would let anyone write rows into a tenant's ledger.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import AsyncGeneratorType
from typing import Any, Final, cast

import grpc.aio
import orjson

from mainmast.auth import PLATFORM_ADMIN_ROLE, CallerAuthentication
from mainmast.db import DatabasePool
from mainmast.errors import (
    DeadlineExceededError,
    FieldViolation,
    MainmastError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from mainmast.llm import LLM_ERROR_DOMAIN
from mainmast.llm.v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2
from mainmast.logging import get_logger
from mainmast.runtime import Principal, current_principal

from ._completion import CompletionRequest, TextDelta
from ._http_call import deadline_after
from ._ledger import UsageLedger
from ._messages import completion_message, completion_request, daily_usage_message, model_message
from ._quota import Reservation, TenantQuotas, estimate_tokens
from ._router import RoutedStreamEvent, Router
from ._routing import RoutingTable
from ._routing_results import Attempt, RoutedCompletion, attempts_of
from ._usage import NAME_LENGTH, CallOutcome, UsageRecord
from ._usage_query import daily_usage, invalid_usage_range, usage_days

COMPLETE_PERMISSION: Final = "llm:complete"
"""What Complete and StreamComplete need."""
LIST_MODELS_PERMISSION: Final = "llm:read"
"""What ListModels needs."""
USAGE_PERMISSION: Final = "llm-usage:read"
"""What GetUsage needs (and platform admin for other tenants)."""
DEFAULT_PAGE_SIZE: Final = 50
"""ListModels' page size when the request sets none."""
MAX_PAGE_SIZE: Final = 1000
"""The largest page ListModels returns."""
TENANT_PREFIX: Final = "tenants/"
"""How a tenant's resource name begins."""
ALL_TENANTS: Final = "tenants/-"
"""GetUsage's name for every tenant."""

# grpc reports "no deadline" as a time remaining of centuries; anything past a year is none.
_NO_DEADLINE_SECONDS: Final = 365 * 24 * 3600.0
_LEDGER_RETRY_AFTER_SECONDS: Final = 5.0

_Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class _Call:
    """One completion call of an authorised caller: who asks, of which models, when."""

    tenant: str
    subject: str
    model: str
    fallback_models: tuple[str, ...]
    request_id: str
    """The call's request id; empty when it has none (or sent one that is no UUID)."""
    deadline: float | None
    started: float
    """When the call began, on the monotonic clock."""


def tenant_id(tenant: str) -> str:
    """The bare tenant id the ledger and quotas key by (`acme` for `tenants/acme`)."""
    return tenant.removeprefix(TENANT_PREFIX)


def call_deadline(context: _Context) -> float | None:
    """The router's deadline (on the loop clock) for the call's gRPC deadline; None if none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_SECONDS:
        return None
    return deadline_after(max(remaining, 0.0))


def _checked_request_id(request_id: str) -> str:
    if not request_id:
        return ""
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        violation = FieldViolation("request_id", "must be a UUID")
        raise ValidationError(
            "The completion input is invalid: request_id: must be a UUID.",
            field_violations=[violation],
            reason="INVALID_COMPLETION_INPUT",
            domain=LLM_ERROR_DOMAIN,
        ) from None


def _outcome_before_routing(error: BaseException) -> CallOutcome:
    """How a call ended that no deployment was tried for."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return CallOutcome.CANCELLED
    if isinstance(error, RateLimitedError):  # the router's own carry attempts
        return CallOutcome.QUOTA_EXCEEDED
    if isinstance(error, DeadlineExceededError):
        return CallOutcome.TIMED_OUT
    if isinstance(error, ValidationError | NotFoundError):
        return CallOutcome.REJECTED
    return CallOutcome.SERVER_ERROR


async def _close_routed_stream(
    events: AsyncGeneratorType[RoutedStreamEvent, None], failure: BaseException | None
) -> None:
    """Close the router's stream (and with it the upstream request).

    A failure that reached the servicer while the router's stream waited at its own
    `yield` (the call cancelled while a delta was being sent) is thrown into it, so the
    router attaches its attempts to it, as it does to whatever else ends a call.
    """
    if failure is None or events.ag_frame is None:  # no failure, or it came from the router
        await events.aclose()
        return
    try:
        await events.athrow(failure)
    except BaseException as raised:
        if raised is not failure:
            raise
    else:  # the router does not swallow what ends a call; closing is all that is left
        await events.aclose()


class LlmServicer(llm_service_pb2_grpc.LlmServiceServicer):
    """`mainmast.llm.v1.LlmService` over a router, tenant quotas and a usage ledger.

    `callers` checks the permissions of the principal the runtime authenticated.
    """

    def __init__(
        self,
        *,
        routing: RoutingTable,
        router: Router,
        quotas: TenantQuotas,
        ledger: UsageLedger,
        ledger_pool: DatabasePool,
        callers: CallerAuthentication,
    ) -> None:
        self._routing = routing
        self._router = router
        self._quotas = quotas
        self._ledger = ledger
        self._ledger_pool = ledger_pool
        self._callers = callers
        self._logger = get_logger("mainmast_llm.servicer")
        # Settlements outlive a cancelled call; the set keeps their tasks alive until done.
        self._settling: set[asyncio.Task[None]] = set()

    async def ListModels(  # noqa: N802 -- the contract's method name
        self, request: llm_service_pb2.ListModelsRequest, context: _Context
    ) -> llm_service_pb2.ListModelsResponse:
        """A page of the routing file's aliases, ordered by alias."""
        await self._require(current_principal(), LIST_MODELS_PERMISSION)
        if request.page_size < 0:
            raise ValidationError(
                "page_size must not be negative.",
                field_violations=[FieldViolation("page_size", "must be 0 or more")],
            )
        page_size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _page_token_alias(request.page_token)
        names = sorted(name for name in self._routing.aliases if after is None or name > after)
        page = names[:page_size]
        next_token = _page_token(page[-1]) if len(names) > page_size else ""
        return llm_service_pb2.ListModelsResponse(
            models=[model_message(self._routing.aliases[name]) for name in page],
            next_page_token=next_token,
        )

    async def Complete(  # noqa: N802 -- the contract's method name
        self, request: llm_service_pb2.CompleteRequest, context: _Context
    ) -> llm_service_pb2.CompleteResponse:
        """One completion, with its usage and attempts."""
        call, completion = await self._start_call(request.input, request.request_id, context)
        reservation = await self._reserve(call, completion)
        tokens_used = 0
        try:
            with self._recording_failure(call):
                routed = await self._router.complete(
                    completion,
                    model=call.model,
                    fallback_models=call.fallback_models,
                    deadline=call.deadline,
                )
            tokens_used = routed.response.total_tokens
        finally:
            await self._settle(reservation, tokens_used)
        self._record_success(call, routed)
        return llm_service_pb2.CompleteResponse(completion=completion_message(routed))

    async def StreamComplete(  # noqa: N802 -- the contract's method name
        self, request: llm_service_pb2.StreamCompleteRequest, context: _Context
    ) -> AsyncIterator[llm_service_pb2.StreamCompleteResponse]:
        """Text deltas, then the whole completion with its usage and attempts."""
        call, completion = await self._start_call(request.input, request.request_id, context)
        reservation = await self._reserve(call, completion)
        # A stream that failed after text was sent used tokens nobody counted for us: the
        # estimate stays charged.
        tokens_used = 0
        routed: RoutedCompletion | None = None
        failure: BaseException | None = None
        # Router.stream is an async generator; closing it closes the provider request.
        events = cast(
            "AsyncGeneratorType[RoutedStreamEvent, None]",
            self._router.stream(
                completion,
                model=call.model,
                fallback_models=call.fallback_models,
                deadline=call.deadline,
            ),
        )
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    tokens_used = reservation.estimated_tokens
                    yield llm_service_pb2.StreamCompleteResponse(
                        delta=resources_pb2.CompletionDelta(text=event.text)
                    )
                else:
                    routed = event
                    tokens_used = routed.response.total_tokens
        except BaseException as exc:
            failure = exc
            raise
        finally:
            await _close_routed_stream(events, failure)
            await self._settle(reservation, tokens_used)
            if failure is not None:
                self._record_failure(call, failure)
        if routed is None:  # the router promises a final completion; say so if it broke that
            raise RuntimeError("the routed stream ended without its completion")
        self._record_success(call, routed)
        yield llm_service_pb2.StreamCompleteResponse(completion=completion_message(routed))

    async def GetUsage(  # noqa: N802 -- the contract's method name
        self, request: llm_service_pb2.GetUsageRequest, context: _Context
    ) -> llm_service_pb2.GetUsageResponse:
        """Usage by tenant, model alias and UTC day over the requested range."""
        principal = current_principal()
        await self._require(principal, USAGE_PERMISSION)
        tenant = self._usage_tenant(request.tenant, principal)
        start, end = _usage_range(request)
        try:
            totals = await daily_usage(
                self._ledger_pool,
                start=start,
                end=end,
                tenant=tenant,
                model_alias=request.model_alias or None,
            )
        except UnavailableError as exc:
            raise UnavailableError(
                "The usage ledger cannot be read right now.",
                retry_after=_LEDGER_RETRY_AFTER_SECONDS,
                reason="USAGE_LEDGER_UNAVAILABLE",
                domain=LLM_ERROR_DOMAIN,
            ) from exc
        return llm_service_pb2.GetUsageResponse(
            daily_usages=[
                daily_usage_message(total, TENANT_PREFIX + total.tenant) for total in totals
            ]
        )

    async def _require(self, principal: Principal, permission: str) -> None:
        try:
            await self._callers.require(principal, permission)
        except PermissionDeniedError as exc:
            self._logger.warning("llm.call_refused", reason=exc.reason, permission=permission)
            raise

    def _usage_tenant(self, requested: str, principal: Principal) -> str | None:
        """The tenant id GetUsage reads for `principal`; None for every tenant.

        Its own tenant is the default; another tenant, or every tenant (`tenants/-`),
        needs the platform-admin role among the roles of the caller's token.
        """
        own_tenant = tenant_id(principal.tenant)
        if not requested:
            return own_tenant
        if requested != ALL_TENANTS and (
            not requested.startswith(TENANT_PREFIX) or not tenant_id(requested)
        ):
            raise ValidationError(
                f"The tenant {requested!r} is not a tenant resource name like 'tenants/acme'.",
                field_violations=[
                    FieldViolation("tenant", "must be 'tenants/<id>' or 'tenants/-'")
                ],
            )
        if requested != ALL_TENANTS and tenant_id(requested) == own_tenant:
            return own_tenant
        if self._callers.required and PLATFORM_ADMIN_ROLE not in principal.roles:
            raise PermissionDeniedError(
                f"Reading the usage of {requested!r} needs platform admin.",
                reason="TENANT_ACCESS_DENIED",
                domain=LLM_ERROR_DOMAIN,
                metadata={"tenant": requested},
            )
        return None if requested == ALL_TENANTS else tenant_id(requested)

    async def _start_call(
        self, message: resources_pb2.CompletionInput, request_id: str, context: _Context
    ) -> tuple[_Call, CompletionRequest]:
        """The call of an authorised caller and its checked request; a bad request is
        recorded as a rejected call and raised."""
        principal = current_principal()
        await self._require(principal, COMPLETE_PERMISSION)
        call = _Call(
            tenant=tenant_id(principal.tenant),
            subject=principal.subject,
            model=message.model,
            fallback_models=tuple(message.fallback_models),
            request_id="",
            deadline=call_deadline(context),
            started=time.monotonic(),
        )
        with self._recording_failure(call):
            call = dataclasses.replace(call, request_id=_checked_request_id(request_id))
        with self._recording_failure(call):
            completion = completion_request(message)
            # An unknown model is refused before the quotas count the call.
            self._router.aliases_of(call.model, call.fallback_models)
        return call, completion

    async def _reserve(self, call: _Call, request: CompletionRequest) -> Reservation:
        with self._recording_failure(call):
            return await self._quotas.reserve(
                call.tenant, estimated_tokens=estimate_tokens(request)
            )

    async def _settle(self, reservation: Reservation, tokens_used: int) -> None:
        """Settle `reservation`; it completes even when the call is cancelled meanwhile."""
        task = asyncio.ensure_future(self._settle_logged(reservation, tokens_used))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def _settle_logged(self, reservation: Reservation, tokens_used: int) -> None:
        # The call's outcome is decided; a store that cannot take the settlement now costs
        # the tenant some accuracy in this window, not the caller its answer.
        try:
            await self._quotas.settle(reservation, actual_tokens=tokens_used)
        except MainmastError as exc:
            self._logger.warning(
                "llm.quota_settle_failed", tenant=reservation.tenant, reason=exc.reason
            )

    def _record_success(self, call: _Call, routed: RoutedCompletion) -> None:
        response = routed.response
        prices = self._routing.prices
        # The routing file prices the model it names ("gpt-4o"); the provider answers with
        # its dated name ("gpt-4o-2024-08-06"), which a price table may list too.
        configured_model = routed.attempts[-1].model if routed.attempts else response.model
        priced_model = (
            configured_model
            if prices.price_of(routed.deployment, configured_model) is not None
            else response.model
        )
        self._ledger.record(
            UsageRecord(
                tenant=call.tenant,
                subject=call.subject,
                model_alias=routed.model_alias,
                deployment=routed.deployment,
                provider=response.provider,
                model=response.model,
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens,
                cost_micros=prices.cost_micros(
                    routed.deployment,
                    priced_model,
                    response.prompt_tokens,
                    response.completion_tokens,
                ),
                currency_code=prices.currency_code,
                latency=routed.latency,
                outcome=CallOutcome.SUCCEEDED,
                occurred_at=datetime.now(UTC),
                request_id=call.request_id,
            )
        )

    @contextmanager
    def _recording_failure(self, call: _Call) -> Iterator[None]:
        """Record the call as failed when anything ends it inside the block."""
        try:
            yield
        except BaseException as exc:
            self._record_failure(call, exc)
            raise

    def _record_failure(self, call: _Call, error: BaseException) -> None:
        """Record a failed call under its last attempt (the router attaches them to
        whatever ends a call, a cancellation included), or under no deployment when it
        ended before routing; log every attempt."""
        attempts = attempts_of(error)
        reason = error.reason if isinstance(error, MainmastError) else type(error).__name__
        # The caller chose the alias; the ledger keeps names of a bounded length.
        model_alias = call.model[:NAME_LENGTH]
        self._logger.warning(
            "llm.call_failed",
            model_alias=model_alias,
            reason=reason,
            attempts=[_attempt_log(attempt) for attempt in attempts],
        )
        if attempts:
            last = attempts[-1]
            cancelled = isinstance(error, asyncio.CancelledError | GeneratorExit)
            outcome = CallOutcome.CANCELLED if cancelled else CallOutcome(last.outcome.value)
            model_alias, deployment, provider, model = (
                last.model_alias,
                last.deployment,
                last.provider,
                last.model,
            )
        else:
            outcome = _outcome_before_routing(error)
            deployment, provider, model = "", None, ""
        self._ledger.record(
            UsageRecord.priced(
                self._routing.prices,
                tenant=call.tenant,
                subject=call.subject,
                model_alias=model_alias,
                deployment=deployment,
                provider=provider,
                model=model,
                prompt_tokens=0,
                completion_tokens=0,
                latency=timedelta(seconds=time.monotonic() - call.started),
                outcome=outcome,
                request_id=call.request_id,
            )
        )


def _attempt_log(attempt: Attempt) -> dict[str, object]:
    return {
        "model_alias": attempt.model_alias,
        "deployment": attempt.deployment,
        "outcome": attempt.outcome.value,
        "latency_ms": round(attempt.latency.total_seconds() * 1000, 1),
        "upstream_http_status": attempt.upstream_http_status,
        "reason": attempt.error_reason,
    }


def _page_token(last_alias: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": last_alias})).decode()


def _page_token_alias(token: str) -> str | None:
    if not token:
        return None
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        decoded = None
    after = decoded.get("after") if isinstance(decoded, dict) else None
    if not isinstance(after, str):
        raise ValidationError(
            "The page token is malformed.",
            field_violations=[FieldViolation("page_token", "is not a token this service gave")],
            reason="INVALID_PAGE_TOKEN",
            domain=LLM_ERROR_DOMAIN,
        )
    return after


def _usage_range(request: llm_service_pb2.GetUsageRequest) -> tuple[datetime, datetime]:
    """The request's range; ValidationError (INVALID_TIME_RANGE) when missing or invalid."""
    missing = [
        FieldViolation(name, "is required")
        for name in ("start_time", "end_time")
        if not request.HasField(name)
    ]
    if missing:
        raise invalid_usage_range(missing)
    start = request.start_time.ToDatetime(tzinfo=UTC)
    end = request.end_time.ToDatetime(tzinfo=UTC)
    usage_days(start, end)  # raises INVALID_TIME_RANGE for a range it cannot serve
    return start, end
