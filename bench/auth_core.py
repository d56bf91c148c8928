"""The auth core in process: authorization checks, token verification, password hashing.

`uv run --all-packages python -m bench auth_core` measures, side by side in one run:

1. Check: `Authorizer.check` on stores of 10, 10,000 and 100,000 Casbin policy lines,
   against a plain `casbin.Enforcer` of the same model holding the same lines. The same
   requests run against every store; the two must agree wherever tenant isolation does
   not decide. Target: mainmast's cost at 100k within 2x of its cost at 10.
2. Verify: `TokenVerifier.verify` of an access token against a bare `jwt.decode` of the
   same token with the same key (and pyjwt with the same checks, for reference).
   Target: within 1.3x of the bare decode.
3. Passwords: argon2id (the service's default parameters) hashes and verifications per
   second, one thread and two; and the unknown-user path against a wrong password.

Timings are the best of several repetitions, contenders interleaved.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import argon2
import casbin
import jwt
from casbin.persist.adapter import Adapter

from mainmast.auth._jwks import KeySet
from mainmast.auth._verify import TokenVerifier, VerificationPolicy
from mainmast_auth._authorizer import Authorizer, default_tenant_lines, platform_lines
from mainmast_auth._key_ring import KeyRing
from mainmast_auth._keys import SigningAlgorithm, generate_signing_key
from mainmast_auth._passwords import DEFAULT_PARAMETERS, PasswordHasher
from mainmast_auth._policy_model import CASBIN_MODEL, PolicyLine, Section
from mainmast_auth._tokens import AccessTokenIssuer

STORE_SIZES = (10, 10_000, 100_000)
CHECK_TARGET = 2.0
VERIFY_TARGET = 1.3
ISSUER, AUDIENCE = "https://auth.example.test", "mainmast"

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "auth_core.json"

# Every store holds tenant t00000 with its default roles and bob, a member there; the
# same requests (one allowed, three denied, the costlier case) run against each store.
BOB = "tenants/t00000/users/bob"
REQUESTS = (
    (BOB, "tenants/t00000", "invoices:read"),  # allowed: member inherits viewer's *:read
    (BOB, "tenants/t00000", "users:create"),  # denied: members do not create users
    (BOB, "tenants/t00001", "invoices:read"),  # denied: another tenant
    (BOB, "tenants/t00000", "reports:export"),  # denied: granted to nobody
)


def policy_store(size: int) -> list[PolicyLine]:
    """`size` policy lines: tenants with their default roles, users, and custom grants."""
    lines = [
        *default_tenant_lines("tenants/t00000"),
        PolicyLine(Section.ASSIGNMENT, (BOB, "tenants/t00000/roles/member", "tenants/t00000")),
    ]
    if size <= len(lines):
        return lines[:size]
    lines += platform_lines()
    tenants = max(2, size // 20)
    for number in range(1, tenants):
        lines += default_tenant_lines(f"tenants/t{number:05}")
    number = 0
    while len(lines) < size:
        tenant = f"tenants/t{1 + number % (tenants - 1):05}"
        if number % 5 == 4:
            grant = (f"{tenant}/roles/member", tenant, f"reports-{number}", "export")
            lines.append(PolicyLine(Section.GRANT, grant))
        else:
            role = ("owner", "admin", "member", "viewer")[number % 4]
            assignment = (f"{tenant}/users/u{number}", f"{tenant}/roles/{role}", tenant)
            lines.append(PolicyLine(Section.ASSIGNMENT, assignment))
        number += 1
    return lines[:size]


class _LinesAdapter(Adapter):
    """Loads lines straight into the model (casbin's add_policies is quadratic)."""

    def __init__(self, lines: list[PolicyLine]) -> None:
        self.lines = lines

    def load_policy(self, model: Any) -> None:
        for line in self.lines:
            model.model[line.section.value][line.ptype].policy.append(list(line.rule))


def _best_seconds_per_call(call: Callable[[], object], calls: int, repetitions: int) -> float:
    best = float("inf")
    for _ in range(repetitions):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def _cycle(requests: tuple[tuple[str, str, str], ...]) -> Iterator[tuple[str, str, str]]:
    while True:
        yield from requests


def _check_row(size: int) -> dict[str, Any]:
    lines = policy_store(size)
    started = time.perf_counter()
    authorizer = Authorizer(lines)
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=CASBIN_MODEL), _LinesAdapter(lines))
    casbin_load_seconds = time.perf_counter() - started

    ours = _cycle(REQUESTS)
    mainmast_seconds = _best_seconds_per_call(
        lambda: authorizer.check(*next(ours)), calls=20_000, repetitions=5
    )
    theirs = _cycle(tuple((p, t, *perm.split(":")) for p, t, perm in REQUESTS))
    casbin_seconds = _best_seconds_per_call(
        lambda: enforcer.enforce(*next(theirs)), calls=max(4, 20_000 // size), repetitions=3
    )
    decisions = [authorizer.check(*request) for request in REQUESTS]
    casbin_decisions = [
        enforcer.enforce(principal, tenant, *permission.split(":"))
        for principal, tenant, permission in REQUESTS
    ]
    # Tenant isolation is the one place they may differ (the third request crosses tenants).
    agree = all(
        ours_decision == theirs_decision
        for (_, tenant, _), ours_decision, theirs_decision in zip(
            REQUESTS, decisions, casbin_decisions, strict=True
        )
        if tenant == "tenants/t00000"
    )
    print(
        f"  {size:>7,} lines: mainmast {mainmast_seconds * 1e6:8.2f} us/check, "
        f"casbin {casbin_seconds * 1e6:12.1f} us/check",
        flush=True,
    )
    return {
        "lines": len(lines),
        "mainmast_us": mainmast_seconds * 1e6,
        "casbin_us": casbin_seconds * 1e6,
        "index_build_s": index_seconds,
        "casbin_load_s": casbin_load_seconds,
        "decisions": decisions,
        "agree_with_casbin": agree,
    }


def bench_checks() -> dict[str, Any]:
    """Check cost per store size, mainmast and plain Casbin."""
    return {str(size): _check_row(size) for size in STORE_SIZES}


def bench_verify() -> dict[str, Any]:
    """Verification of the same token by mainmast and by pyjwt, per algorithm."""
    rows: dict[str, Any] = {}
    for algorithm in (SigningAlgorithm.EDDSA, SigningAlgorithm.ES256, SigningAlgorithm.RS256):
        key = generate_signing_key(algorithm, create_time=datetime.now(UTC))
        token = (
            AccessTokenIssuer(issuer=ISSUER, audience=AUDIENCE)
            .issue(
                key,
                subject="tenants/acme/users/alice",
                tenant="tenants/acme",
                roles=["tenants/acme/roles/admin"],
                scopes=["invoices:read", "invoices:write"],
            )
            .token
        )
        keys = KeySet.from_jwks(KeyRing(key).jwks(datetime.now(UTC)))
        policy = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE)
        # The target compares full verification: a verifier that remembers tokens would
        # answer every call after the first from memory, so it is timed on its own row.
        verifier = TokenVerifier(keys, policy, cache_size=0)
        remembering = TokenVerifier(keys, policy)
        assert not isinstance(key.private_key, bytes)
        public_key = key.private_key.public_key()
        name = algorithm.value

        def bare(
            public_key: Any = public_key, token: str = token, name: str = name
        ) -> dict[str, Any]:
            return jwt.decode(token, public_key, algorithms=[name], audience=AUDIENCE)

        def same_checks(
            public_key: Any = public_key, token: str = token, name: str = name
        ) -> object:
            return jwt.decode(
                token,
                public_key,
                algorithms=[name],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=30,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"], "strict_aud": True},
            )

        def ours(verifier: TokenVerifier = verifier, token: str = token) -> object:
            return verifier.verify(token)

        def remembered(verifier: TokenVerifier = remembering, token: str = token) -> object:
            return verifier.verify(token)

        assert verifier.verify(token).subject == bare()["sub"]
        best = dict.fromkeys(("mainmast", "remembered", "bare", "pyjwt_same_checks"), float("inf"))
        calls = 3000 if algorithm is not SigningAlgorithm.RS256 else 1500
        for _ in range(5):  # interleaved: drift hits every contender alike
            for label, call in (
                ("mainmast", ours),
                ("remembered", remembered),
                ("bare", bare),
                ("pyjwt_same_checks", same_checks),
            ):
                best[label] = min(best[label], _best_seconds_per_call(call, calls, 1))
        rows[name] = {
            "token_bytes": len(token),
            **{f"{label}_us": seconds * 1e6 for label, seconds in best.items()},
            "ratio_vs_bare": best["mainmast"] / best["bare"],
        }
        print(
            f"  {name:>5}: mainmast {best['mainmast'] * 1e6:7.1f} us, bare jwt.decode "
            f"{best['bare'] * 1e6:7.1f} us, ratio {best['mainmast'] / best['bare']:.2f}",
            flush=True,
        )
    return rows


def _rate(call: Callable[[], object], calls: int, threads: int = 1) -> float:
    def work() -> None:
        for _ in range(calls):
            call()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return calls * threads / (time.perf_counter() - started)


def _paired_median_ms(
    first: Callable[[], object], second: Callable[[], object], pairs: int
) -> tuple[float, float]:
    """Median milliseconds of two calls timed alternately, so drift hits both alike."""
    firsts, seconds = [], []
    for _ in range(pairs):
        for call, samples in ((first, firsts), (second, seconds)):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(firsts), statistics.median(seconds)


def bench_passwords() -> dict[str, Any]:
    """argon2id rates with the default parameters, and the unknown-user path's cost."""
    hasher = PasswordHasher()
    password = "correct horse battery staple"
    stored = hasher.hash(password)
    wrong_ms, unknown_ms = _paired_median_ms(
        lambda: hasher.verify(stored, "a wrong password"),
        lambda: hasher.verify(None, password),
        pairs=15,
    )
    rows = {
        "hash_per_s": _rate(lambda: hasher.hash(password), 10),
        "verify_per_s": _rate(lambda: hasher.verify(stored, password), 10),
        "verify_per_s_2_threads": _rate(lambda: hasher.verify(stored, password), 10, threads=2),
        "wrong_password_median_ms": wrong_ms,
        "unknown_user_median_ms": unknown_ms,
        "unknown_vs_wrong": unknown_ms / wrong_ms,
    }
    print(
        f"  hash {rows['hash_per_s']:.1f}/s, verify {rows['verify_per_s']:.1f}/s "
        f"({rows['verify_per_s_2_threads']:.1f}/s on 2 threads); wrong password "
        f"{wrong_ms:.1f} ms, unknown user {unknown_ms:.1f} ms (median)",
        flush=True,
    )
    return rows


def _parameters(parameters: argon2.Parameters) -> str:
    memory = parameters.memory_cost / 1024
    return f"m={memory:g} MiB, t={parameters.time_cost}, p={parameters.parallelism}"


def _table(checks: dict[str, Any], verify: dict[str, Any], passwords: dict[str, Any]) -> str:
    base = checks[str(STORE_SIZES[0])]["mainmast_us"]
    lines = [
        "| policy lines | mainmast check | casbin enforce | casbin / mainmast "
        "| mainmast vs its cost at 10 |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, row in checks.items():
        lines.append(
            f"| {int(size):,} | {row['mainmast_us']:.2f} us | {row['casbin_us']:,.1f} us "
            f"| {row['casbin_us'] / row['mainmast_us']:,.0f}x | {row['mainmast_us'] / base:.2f}x |"
        )
    lines += [
        "",
        "| token | mainmast verify | bare jwt.decode | pyjwt, same checks | mainmast / bare "
        "| mainmast, token remembered |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in verify.items():
        lines.append(
            f"| {name}, {row['token_bytes']} bytes | {row['mainmast_us']:.1f} us "
            f"| {row['bare_us']:.1f} us | {row['pyjwt_same_checks_us']:.1f} us "
            f"| {row['ratio_vs_bare']:.2f}x | {row['remembered_us']:.1f} us |"
        )
    lines += [
        "",
        f"| argon2id ({_parameters(DEFAULT_PARAMETERS)}) | per second |",
        "| --- | ---: |",
        f"| hash | {passwords['hash_per_s']:.1f} |",
        f"| verify | {passwords['verify_per_s']:.1f} |",
        f"| verify, 2 threads | {passwords['verify_per_s_2_threads']:.1f} |",
        "",
        "| login that fails | median time |",
        "| --- | ---: |",
        f"| wrong password | {passwords['wrong_password_median_ms']:.1f} ms |",
        f"| unknown user (dummy hash) | {passwords['unknown_user_median_ms']:.1f} ms "
        f"({passwords['unknown_vs_wrong']:.2f}x) |",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the three measurements, print the tables, save the figures."""
    print("Check, in process:", flush=True)
    checks = bench_checks()
    print("Verify, in process:", flush=True)
    verify = bench_verify()
    print("Passwords:", flush=True)
    passwords = bench_passwords()
    print()
    print(_table(checks, verify, passwords))
    flatness = (
        checks[str(STORE_SIZES[-1])]["mainmast_us"] / checks[str(STORE_SIZES[0])]["mainmast_us"]
    )
    eddsa_ratio = verify["EdDSA"]["ratio_vs_bare"]
    print(
        f"\nCheck at 100k vs 10 lines: {flatness:.2f}x (target <= {CHECK_TARGET}x): "
        f"{'met' if flatness <= CHECK_TARGET else 'MISSED'}"
    )
    print(
        f"EdDSA verify vs bare jwt.decode: {eddsa_ratio:.2f}x (target <= {VERIFY_TARGET}x): "
        f"{'met' if eddsa_ratio <= VERIFY_TARGET else 'MISSED'}"
    )
    print(
        "Decisions agree with casbin (isolation aside): "
        f"{all(row['agree_with_casbin'] for row in checks.values())}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "checks": checks,
        "verify": verify,
        "passwords": passwords,
        "check_100k_vs_10": flatness,
        "verify_eddsa_vs_bare": eddsa_ratio,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nsaved {RESULTS.relative_to(HERE.parent)}")
