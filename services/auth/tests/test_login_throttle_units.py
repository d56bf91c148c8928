"""LoginThrottle, LoginLimits and LoginOrigin on their own, with a clock the test moves."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mainmast.errors import RateLimitedError
from mainmast_auth._login_throttle import LoginLimits, LoginOrigin, LoginThrottle


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:10.0.0.7:51234", "10.0.0.7"),
        ("ipv6:[::1]:51234", "::1"),
        ("ipv6:[2001:DB8:0:0::1]:443", "2001:db8::1"),
        ("unix:/run/auth.sock", "unix:/run/auth.sock"),
    ],
)
def test_the_peer_host_is_the_address(peer: str, address: str) -> None:
    assert LoginOrigin(peer).address(0) == address


def test_forwarded_addresses_count_only_as_far_as_trusted_proxies_go() -> None:
    origin = LoginOrigin.from_call(
        "ipv4:10.0.0.2:4000",
        [("X-Forwarded-For", "198.51.100.1, 192.0.2.5"), ("x-forwarded-for", "203.0.113.9")],
    )

    assert origin.forwarded_for == ("198.51.100.1, 192.0.2.5", "203.0.113.9")
    assert origin.address(0) == "10.0.0.2"
    assert origin.address(1) == "203.0.113.9"
    assert origin.address(2) == "192.0.2.5"
    # Fewer hops than trusted proxies: the header is incomplete, the peer is used.
    assert origin.address(4) == "10.0.0.2"
    assert LoginOrigin.from_call("ipv4:10.0.0.2:4000", None).address(1) == "10.0.0.2"


@pytest.mark.parametrize(
    "bad",
    [
        {"max_failures": 0},
        {"address_max_failures": 0},
        {"window": timedelta(0)},
        {"base_lockout": timedelta(seconds=-1)},
        {"base_lockout": timedelta(minutes=2), "max_lockout": timedelta(minutes=1)},
        {"trusted_proxy_hops": -1},
        {"max_tracked": 0},
    ],
)
def test_nonsensical_limits_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        LoginLimits(**bad)  # type: ignore[arg-type]


def test_a_quiet_window_after_a_lockout_forgets_its_history() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(LoginLimits(max_failures=2), clock=clock)
    for _ in range(2):
        throttle.record_failure("tenants/a/users/x", None)
    with pytest.raises(RateLimitedError):
        throttle.check("tenants/a/users/x", None)
    clock.now += 60 + 15 * 60
    throttle.check("tenants/a/users/x", None)
    # A fresh start: one failure does not lock again.
    throttle.record_failure("tenants/a/users/x", None)
    throttle.check("tenants/a/users/x", None)


def test_the_tables_stay_within_their_bound() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(LoginLimits(max_failures=1, max_tracked=3), clock=clock)
    for index in range(5):
        throttle.record_failure(f"name-{index}", None)
    # The least recent records were forgotten; the most recent are still locked.
    throttle.check("name-0", None)
    throttle.check("name-1", None)
    for index in (2, 3, 4):
        with pytest.raises(RateLimitedError):
            throttle.check(f"name-{index}", None)


def test_a_success_keeps_the_address_count() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(LoginLimits(max_failures=5, address_max_failures=2), clock=clock)
    throttle.record_failure("tenants/a/users/x", "10.0.0.1")
    throttle.record_success("tenants/a/users/x")
    throttle.record_failure("tenants/a/users/x", "10.0.0.1")

    throttle.check("tenants/a/users/x", None)
    with pytest.raises(RateLimitedError):
        throttle.check("tenants/a/users/y", "10.0.0.1")
