"""Failed-login throttling: per login name and per client address, with growing lockout.

After `max_failures` failed logins within `window` for one name (a tenant's username, or
a client id), or `address_max_failures` from one client address, further logins for it
are refused for `base_lockout`; every further failure while the lockout history lasts
doubles that, up to `max_lockout`. A refused login costs no argon2id work: locking out
protects the CPU as much as the account. The key is the name as asked for, whether or
not it exists, so a lockout tells nothing about which users exist. A successful login
clears its name's record but not its address's (one known password must not buy an
address unlimited guesses at other names).

The records live in memory, per replica: N replicas behind a balancer allow up to N
times the limits. Sharing them (e.g. in Redis) is a later step. Each table is bounded by
`max_tracked`; past it the least recently failed record is forgotten.

Known gap: a login is checked before its password is verified and counted after, so
guesses sent concurrently all pass the check until the first of them has failed.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import RateLimitedError

LOGIN_THROTTLED: Final = AuthErrorReason.LOGIN_THROTTLED
"""The ErrorInfo reason of a refused login (`ErrorReason.LOGIN_THROTTLED`)."""

_FORWARDED_FOR: Final = "x-forwarded-for"
# 2 ** 32 times any sane base lockout is far past every cap; stops the exponent growing.
_MAX_LEVEL: Final = 32


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """How many failed logins are allowed, and how long a lockout lasts."""

    max_failures: int = 5
    """Failures per login name within `window` that start a lockout."""
    address_max_failures: int = 20
    """Failures per client address (across names) within `window` that start a lockout."""
    window: timedelta = timedelta(minutes=15)
    """How far back failures count; also how long a lockout history outlasts its lockout."""
    base_lockout: timedelta = timedelta(minutes=1)
    """The first lockout; each further failure doubles it."""
    max_lockout: timedelta = timedelta(hours=1)
    """The longest lockout."""
    trusted_proxy_hops: int = 0
    """How many proxies in front of the service append to `x-forwarded-for`; 0 (the
    default) ignores the header and throttles the gRPC peer address."""
    max_tracked: int = 100_000
    """Records kept per table (names, addresses) before the least recent is forgotten."""

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.address_max_failures < 1:
            raise ValueError("max_failures and address_max_failures must be at least 1")
        if self.window <= timedelta(0) or self.base_lockout <= timedelta(0):
            raise ValueError("window and base_lockout must be positive")
        if self.max_lockout < self.base_lockout:
            raise ValueError("max_lockout must be at least base_lockout")
        if self.trusted_proxy_hops < 0:
            raise ValueError("trusted_proxy_hops must be 0 or more")
        if self.max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")


@dataclass(frozen=True, slots=True)
class LoginOrigin:
    """Where a login came from, as the transport saw it."""

    peer: str
    """The gRPC peer, e.g. `ipv4:10.0.0.7:51234` or `ipv6:[::1]:51234`."""
    forwarded_for: tuple[str, ...] = ()
    """The `x-forwarded-for` values, in the order received."""

    @classmethod
    def from_call(
        cls, peer: str, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> LoginOrigin:
        """The origin of a call from its peer and invocation metadata."""
        forwarded = tuple(
            value
            for key, value in metadata or ()
            if key.lower() == _FORWARDED_FOR and isinstance(value, str)
        )
        return cls(peer, forwarded)

    def address(self, trusted_proxy_hops: int) -> str:
        """The client address to throttle: the peer's host, or, behind `trusted_proxy_hops`
        proxies, the address the outermost trusted proxy saw (counted from the right of
        `x-forwarded-for`, so a client cannot choose it by sending the header itself)."""
        if trusted_proxy_hops > 0:
            hops = [hop.strip() for value in self.forwarded_for for hop in value.split(",")]
            if len(hops) >= trusted_proxy_hops:
                return _canonical_host(hops[-trusted_proxy_hops])
        return _peer_host(self.peer)


def _peer_host(peer: str) -> str:
    # grpc peers: "ipv4:1.2.3.4:port", "ipv6:[::1]:port", "unix:/path"; hosts, not ports,
    # are throttled (every connection has a port of its own).
    scheme, _, rest = peer.partition(":")
    if scheme == "ipv4":
        return _canonical_host(rest.rpartition(":")[0])
    if scheme == "ipv6":
        return _canonical_host(rest.rpartition(":")[0].strip("[]"))
    return peer


def _canonical_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host[:255]


@dataclass(slots=True)
class _Record:
    failures: deque[float]
    level: int = 0
    locked_until: float = float("-inf")


@dataclass(slots=True)
class _Table:
    """The failure records of one kind of key, least recently failed first."""

    max_failures: int
    limits: LoginLimits
    records: OrderedDict[str, _Record] = field(default_factory=OrderedDict)

    def _stale(self, record: _Record, now: float) -> bool:
        window = self.limits.window.total_seconds()
        if record.level > 0:
            return now >= record.locked_until + window
        return not record.failures or now - record.failures[-1] >= window

    def _live(self, key: str, now: float) -> _Record | None:
        record = self.records.get(key)
        if record is not None and self._stale(record, now):
            del self.records[key]
            return None
        return record

    def locked_for(self, key: str, now: float) -> float:
        """Seconds left of `key`'s lockout; 0 if it is not locked."""
        record = self._live(key, now)
        return 0.0 if record is None else max(0.0, record.locked_until - now)

    def fail(self, key: str, now: float) -> None:
        """Count a failure of `key`; start or double its lockout when due."""
        record = self._live(key, now)
        if record is None:
            record = _Record(deque(maxlen=self.max_failures))
            self.records[key] = record
        else:
            self.records.move_to_end(key)
        window = self.limits.window.total_seconds()
        while record.failures and now - record.failures[0] >= window:
            record.failures.popleft()
        record.failures.append(now)
        if record.level > 0 or len(record.failures) >= self.max_failures:
            record.level = min(record.level + 1, _MAX_LEVEL)
            lockout = self.limits.base_lockout.total_seconds() * 2 ** (record.level - 1)
            record.locked_until = now + min(lockout, self.limits.max_lockout.total_seconds())
        self._evict(now)

    def clear(self, key: str) -> None:
        """Forget `key`'s failures and lockout history."""
        self.records.pop(key, None)

    def _evict(self, now: float) -> None:
        # Stale records at the front go first; past the bound, the least recent goes anyway.
        while self.records:
            oldest_key, oldest = next(iter(self.records.items()))
            if len(self.records) <= self.limits.max_tracked and not self._stale(oldest, now):
                break
            del self.records[oldest_key]


class LoginThrottle:
    """Failed-login records per name and per client address, in this process's memory."""

    def __init__(
        self, limits: LoginLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits or LoginLimits()
        self._clock = clock
        self._names = _Table(self._limits.max_failures, self._limits)
        self._addresses = _Table(self._limits.address_max_failures, self._limits)

    @property
    def limits(self) -> LoginLimits:
        """The limits this throttle applies."""
        return self._limits

    def address_of(self, origin: LoginOrigin | None) -> str | None:
        """The address `origin` is throttled under; None when the origin is unknown."""
        return None if origin is None else origin.address(self._limits.trusted_proxy_hops)

    def check(self, name: str, address: str | None) -> None:
        """Raise RateLimitedError(LOGIN_THROTTLED) if `name` or `address` is locked out."""
        now = self._clock()
        wait = self._names.locked_for(name, now)
        if address is not None:
            wait = max(wait, self._addresses.locked_for(address, now))
        if wait > 0:
            # Whole seconds: the same answer for every name with the same history, and no
            # finer clock for an attacker to read.
            raise RateLimitedError(
                "Too many failed logins. Try again later.",
                retry_after=math.ceil(wait),
                reason=LOGIN_THROTTLED,
                domain=AUTH_ERROR_DOMAIN,
            )

    def record_failure(self, name: str, address: str | None) -> None:
        """Count a failed login of `name` from `address`."""
        now = self._clock()
        self._names.fail(name, now)
        if address is not None:
            self._addresses.fail(address, now)

    def record_success(self, name: str) -> None:
        """Clear `name`'s failures; its address keeps its count."""
        self._names.clear(name)
