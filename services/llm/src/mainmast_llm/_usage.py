"""What the usage ledger records of each call, and what the call cost.

A `UsageRecord` is one completion call as the ledger stores it: who made it, which alias,
deployment and model served it, the tokens it used, its cost, latency, outcome and time.
The cost comes from a `PriceTable` (prices per 1,000 prompt and completion tokens, in one
currency) and is kept in millionths of that currency, so sums are exact integers.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

from ._completion import ProviderKind

NAME_LENGTH: Final = 255
"""Longest tenant, subject, alias, deployment or model name the ledger stores."""
REQUEST_ID_LENGTH: Final = 64
"""Longest request id the ledger stores."""

_MICROS_PER_1K_UNITS: Final = Decimal(1000)
# A cost in millionths of the currency for `tokens` at `price` per 1,000 tokens is
# tokens / 1000 * price * 1_000_000 = tokens * price * 1000.


class CallOutcome(enum.StrEnum):
    """How a call ended: as the contract's Attempt.Outcome names it, or QUOTA_EXCEEDED.

    A call that ended before any deployment was tried (refused by the tenant's quotas,
    invalid input, an unknown model, a deadline already past, cancelled while waiting)
    is recorded without a deployment, provider or model.
    """

    SUCCEEDED = "succeeded"
    RATE_LIMITED = "rate_limited"
    TIMED_OUT = "timed_out"
    CONNECTION_FAILED = "connection_failed"
    SERVER_ERROR = "server_error"
    MALFORMED_RESPONSE = "malformed_response"
    REJECTED = "rejected"
    CIRCUIT_OPEN = "circuit_open"
    CANCELLED = "cancelled"
    QUOTA_EXCEEDED = "quota_exceeded"
    """Refused before routing: a rate limit or token budget of the tenant was reached."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """The price of 1,000 prompt tokens and of 1,000 completion tokens, in whole currency units."""

    prompt_per_1k: Decimal
    completion_per_1k: Decimal

    def __post_init__(self) -> None:
        for name in ("prompt_per_1k", "completion_per_1k"):
            value = _as_decimal(getattr(self, name), name)
            if not value.is_finite() or value < 0:
                raise ValueError(f"{name} must be a finite price of 0 or more, got {value}")
            object.__setattr__(self, name, value)

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The cost of these tokens in millionths of the currency, rounded half up."""
        micros = (
            prompt_tokens * self.prompt_per_1k + completion_tokens * self.completion_per_1k
        ) * _MICROS_PER_1K_UNITS
        return int(micros.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by deployment name or provider model name, in one currency; read-only.

    A deployment's own entry wins over its model's; a call neither names costs nothing.
    """

    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    currency_code: str = "USD"

    def __post_init__(self) -> None:
        code = self.currency_code
        if len(code) != 3 or not code.isascii() or not code.isalpha() or not code.isupper():
            raise ValueError(f"currency_code must be an ISO 4217 code like 'USD', got {code!r}")
        prices = dict(self.prices)
        for key, price in prices.items():
            if not isinstance(price, ModelPrice):
                raise TypeError(f"price of {key!r} must be a ModelPrice, got {type(price)}")
        # A frozen copy: a caller mutating its dict later must not change recorded costs.
        object.__setattr__(self, "prices", MappingProxyType(prices))

    def price_of(self, deployment: str, model: str) -> ModelPrice | None:
        """The price of a call served by `deployment` running provider model `model`."""
        return self.prices.get(deployment) or self.prices.get(model)

    def cost_micros(
        self, deployment: str, model: str, prompt_tokens: int, completion_tokens: int
    ) -> int:
        """What these tokens cost on this deployment, in millionths of `currency_code`."""
        price = self.price_of(deployment, model)
        return 0 if price is None else price.cost_micros(prompt_tokens, completion_tokens)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One call as the ledger stores it; valid by construction (ValueError otherwise).

    `record_id` identifies the record itself, so writing a batch again after a failure
    of unknown outcome stores each record once. A non-empty `request_id` is stored once
    per tenant: a call retried under the same id is counted once.
    """

    tenant: str
    subject: str
    model_alias: str
    deployment: str
    """Empty for a call that ended before any deployment was tried."""
    provider: ProviderKind | None
    """None for a call that ended before any deployment was tried."""
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    currency_code: str
    latency: timedelta
    outcome: CallOutcome
    occurred_at: datetime
    request_id: str = ""
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        for name in ("tenant", "subject", "model_alias", "deployment", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > NAME_LENGTH:
                raise ValueError(f"{name} must be a string of at most {NAME_LENGTH} characters")
        if not self.tenant:
            raise ValueError("tenant must not be empty")
        if len(self.request_id) > REQUEST_ID_LENGTH:
            raise ValueError(f"request_id must be at most {REQUEST_ID_LENGTH} characters")
        for name in ("prompt_tokens", "completion_tokens", "cost_micros"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer of 0 or more, got {value!r}")
        if self.latency < timedelta(0):
            raise ValueError(f"latency must not be negative, got {self.latency}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be time-zone aware")
        if self.provider is not None:
            object.__setattr__(self, "provider", ProviderKind(self.provider))
        object.__setattr__(self, "outcome", CallOutcome(self.outcome))
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))

    @classmethod
    def priced(
        cls,
        prices: PriceTable,
        *,
        tenant: str,
        subject: str,
        model_alias: str,
        deployment: str,
        provider: ProviderKind | None,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency: timedelta,
        outcome: CallOutcome,
        occurred_at: datetime | None = None,
        request_id: str = "",
    ) -> UsageRecord:
        """A record whose cost comes from `prices`; `occurred_at` defaults to now."""
        return cls(
            tenant=tenant,
            subject=subject,
            model_alias=model_alias,
            deployment=deployment,
            provider=provider,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_micros=prices.cost_micros(deployment, model, prompt_tokens, completion_tokens),
            currency_code=prices.currency_code,
            latency=latency,
            outcome=outcome,
            occurred_at=datetime.now(UTC) if occurred_at is None else occurred_at,
            request_id=request_id,
        )

    @property
    def failed(self) -> bool:
        """Whether the call failed (any outcome but SUCCEEDED)."""
        return self.outcome is not CallOutcome.SUCCEEDED


def _as_decimal(value: object, name: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{name} must be a Decimal, int, float or str, got {type(value).__name__}")
    try:
        # str() first: Decimal(0.1) would keep the float's binary error.
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
