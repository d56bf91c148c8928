"""The LlmService servicer: completions through the router, under quotas, into the ledger.

Each completion call, in order: the caller's tenant and subject (from the runtime's
authentication hook), the request checked, the tenant's quotas reserved for an estimate,
the router run under the call's gRPC deadline, the reservation settled with the tokens
really used (shielded, so a cancelled call still gives back what it did not use), and the
call recorded in the usage ledger, success or failure. A cancelled call is cancelled where
it waits, in the router, which closes the provider request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import grpc.aio
import orjson

from mainmast.db import DatabasePool
from mainmast.errors import (
    FieldViolation,
    MainmastError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from mainmast.llm.v1 import llm_service_pb2, llm_service_pb2_grpc, resources_pb2
from mainmast.logging import get_logger
from mainmast.runtime import current_principal

from ._adapter import ProviderAdapter
from ._completion import (
    LLM_ERROR_DOMAIN,
    CompletionRequest,
    CompletionResponse,
    ProviderKind,
    StreamEvent,
    TextDelta,
)
from ._http_call import deadline_after
from ._ledger import UsageLedger
from ._messages import completion_message, completion_request, daily_usage_message, model_message
from ._quota import Reservation, TenantQuotas, estimate_tokens
from ._router import RoutedStreamEvent, Router
from ._routing import RoutingTable
from ._routing_results import Attempt, RoutedCompletion, attempts_of
from ._usage import CallOutcome, UsageRecord
from ._usage_query import daily_usage, invalid_usage_range, usage_days

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
class _TriedDeployment:
    name: str
    provider: ProviderKind
    model: str


# The deployments a call has sent requests to, in order, one list per call (per task). A
# cancellation reaches the servicer as a bare CancelledError without the router's attempts,
# and the ledger still has to know where the cancelled call was.
_TRIED_DEPLOYMENTS: ContextVar[list[_TriedDeployment] | None] = ContextVar(
    "mainmast_llm_tried_deployments", default=None
)


class TrackedAdapter:
    """An adapter that notes, for the call in progress, that its deployment was tried."""

    def __init__(self, deployment: str, adapter: ProviderAdapter) -> None:
        self._deployment = _TriedDeployment(deployment, adapter.provider, adapter.model)
        self._adapter = adapter

    @property
    def provider(self) -> ProviderKind:
        """The wrapped adapter's provider."""
        return self._adapter.provider

    @property
    def model(self) -> str:
        """The wrapped adapter's model."""
        return self._adapter.model

    def _note(self) -> None:
        tried = _TRIED_DEPLOYMENTS.get()
        if tried is not None:
            tried.append(self._deployment)

    async def complete(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> CompletionResponse:
        """The wrapped adapter's completion, the try noted first."""
        self._note()
        return await self._adapter.complete(request, deadline=deadline)

    def stream(
        self, request: CompletionRequest, *, deadline: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The wrapped adapter's stream itself (the router closes it), the try noted first."""
        self._note()
        return self._adapter.stream(request, deadline=deadline)


def tracked_adapters(adapters: Mapping[str, ProviderAdapter]) -> dict[str, ProviderAdapter]:
    """`adapters` (by deployment name), each wrapped in a TrackedAdapter for the servicer."""
    return {name: TrackedAdapter(name, adapter) for name, adapter in adapters.items()}


@dataclass(frozen=True, slots=True)
class _Call:
    """One completion call, checked: who asks, what, of which models."""

    tenant: str
    subject: str
    request: CompletionRequest
    model: str
    fallback_models: tuple[str, ...]
    request_id: str
    deadline: float | None
    started: float
    """When the call began, on the monotonic clock."""
    tried: list[_TriedDeployment]
    """The deployments sent a request so far (see TrackedAdapter)."""


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


class LlmServicer(llm_service_pb2_grpc.LlmServiceServicer):
    """`mainmast.llm.v1.LlmService` over a router, tenant quotas and a usage ledger."""

    def __init__(
        self,
        *,
        routing: RoutingTable,
        router: Router,
        quotas: TenantQuotas,
        ledger: UsageLedger,
        ledger_pool: DatabasePool,
    ) -> None:
        self._routing = routing
        self._router = router
        self._quotas = quotas
        self._ledger = ledger
        self._ledger_pool = ledger_pool
        self._logger = get_logger("mainmast_llm.servicer")
        # Settlements outlive a cancelled call; the set keeps their tasks alive until done.
        self._settling: set[asyncio.Task[None]] = set()

    async def ListModels(  # noqa: N802 -- the contract's method name
        self, request: llm_service_pb2.ListModelsRequest, context: _Context
    ) -> llm_service_pb2.ListModelsResponse:
        """A page of the routing file's aliases, ordered by alias."""
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
        call = self._checked_call(request.input, request.request_id, context)
        reservation = await self._reserve(call)
        tokens_used = 0
        try:
            routed = await self._router.complete(
                call.request,
                model=call.model,
                fallback_models=call.fallback_models,
                deadline=call.deadline,
            )
            tokens_used = routed.response.total_tokens
        except BaseException as exc:
            self._record_failure(call, exc)
            raise
        finally:
            await self._settle(reservation, tokens_used)
        self._record_success(call, routed)
        return llm_service_pb2.CompleteResponse(completion=completion_message(routed))

    async def StreamComplete(  # noqa: N802 -- the contract's method name
        self, request: llm_service_pb2.StreamCompleteRequest, context: _Context
    ) -> AsyncIterator[llm_service_pb2.StreamCompleteResponse]:
        """Text deltas, then the whole completion with its usage and attempts."""
        call = self._checked_call(request.input, request.request_id, context)
        reservation = await self._reserve(call)
        # A stream that failed after text was sent used tokens nobody counted for us: the
        # estimate stays charged.
        tokens_used = 0
        routed: RoutedCompletion | None = None
        # Router.stream is an async generator; closing it closes the provider request.
        events = cast(
            "AsyncGenerator[RoutedStreamEvent, None]",
            self._router.stream(
                call.request,
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
            self._record_failure(call, exc)
            raise
        finally:
            await events.aclose()
            await self._settle(reservation, tokens_used)
        if routed is None:  # the router promises a final completion; say so if it broke that
            raise RuntimeError("the routed stream ended without its completion")
        self._record_success(call, routed)
        yield llm_service_pb2.StreamCompleteResponse(completion=completion_message(routed))

    async def GetUsage(  # noqa: N802 -- the contract's method name
        self, request: llm_service_pb2.GetUsageRequest, context: _Context
    ) -> llm_service_pb2.GetUsageResponse:
        """Usage by tenant, model alias and UTC day over the requested range."""
        own_tenant = tenant_id(current_principal().tenant)
        tenant = _usage_tenant(request.tenant, own_tenant)
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

    def _checked_call(
        self, message: resources_pb2.CompletionInput, request_id: str, context: _Context
    ) -> _Call:
        principal = current_principal()
        tried: list[_TriedDeployment] = []
        # Each call runs in a task of its own, so this binds the list to this call only.
        _TRIED_DEPLOYMENTS.set(tried)
        return _Call(
            tenant=tenant_id(principal.tenant),
            subject=principal.subject,
            request=completion_request(message),
            model=message.model,
            fallback_models=tuple(message.fallback_models),
            request_id=_checked_request_id(request_id),
            deadline=call_deadline(context),
            started=time.monotonic(),
            tried=tried,
        )

    async def _reserve(self, call: _Call) -> Reservation:
        try:
            return await self._quotas.reserve(
                call.tenant, estimated_tokens=estimate_tokens(call.request)
            )
        except MainmastError as exc:
            self._logger.warning(
                "llm.call_refused", model_alias=call.model, reason=exc.reason, tenant=call.tenant
            )
            raise

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

    def _record_failure(self, call: _Call, error: BaseException) -> None:
        """Record a failed call under its last attempt; log every attempt.

        A call that failed before any deployment was tried (an unknown model, a deadline
        already past) names no deployment or provider, which a usage record needs; the
        log line is its trace.
        """
        attempts = attempts_of(error)
        reason = error.reason if isinstance(error, MainmastError) else type(error).__name__
        self._logger.warning(
            "llm.call_failed",
            model_alias=call.model,
            reason=reason,
            attempts=[_attempt_log(attempt) for attempt in attempts],
        )
        cancelled = isinstance(error, asyncio.CancelledError)
        if attempts:
            last = attempts[-1]
            alias = last.model_alias
            tried = _TriedDeployment(last.deployment, last.provider, last.model)
            outcome = CallOutcome.CANCELLED if cancelled else CallOutcome(last.outcome.value)
        elif cancelled and call.tried:
            tried = call.tried[-1]
            alias = self._alias_of(tried.name, call)
            outcome = CallOutcome.CANCELLED
        else:
            return
        self._ledger.record(
            UsageRecord.priced(
                self._routing.prices,
                tenant=call.tenant,
                subject=call.subject,
                model_alias=alias,
                deployment=tried.name,
                provider=tried.provider,
                model=tried.model,
                prompt_tokens=0,
                completion_tokens=0,
                latency=timedelta(seconds=time.monotonic() - call.started),
                outcome=outcome,
                request_id=call.request_id,
            )
        )

    def _alias_of(self, deployment: str, call: _Call) -> str:
        """Which of the call's aliases `deployment` served (deployment names are unique)."""
        for name in (call.model, *call.fallback_models):
            alias = self._routing.alias(name)
            if alias is not None and any(d.name == deployment for d in alias.deployments):
                return name
        return call.model


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


def _usage_tenant(requested: str, own_tenant: str) -> str:
    """The tenant id GetUsage reads for a caller of `own_tenant`.

    Every tenant (`tenants/-`) and other tenants need platform admin, which principals do
    not carry yet, so they are refused.
    """
    if not requested:
        return own_tenant
    if requested != ALL_TENANTS and (
        not requested.startswith(TENANT_PREFIX) or not tenant_id(requested)
    ):
        raise ValidationError(
            f"The tenant {requested!r} is not a tenant resource name like 'tenants/acme'.",
            field_violations=[FieldViolation("tenant", "must be 'tenants/<id>' or 'tenants/-'")],
        )
    if requested == ALL_TENANTS or tenant_id(requested) != own_tenant:
        raise PermissionDeniedError(
            f"Reading the usage of {requested!r} needs platform admin.",
            reason="TENANT_ACCESS_DENIED",
            domain=LLM_ERROR_DOMAIN,
            metadata={"tenant": requested},
        )
    return own_tenant


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
