"""Access token issuing: the RFC 9068 header and claims, verified by the SDK's verifier."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mainmast.auth._jwks import KeySet
from mainmast.auth._verify import TokenVerifier, VerificationPolicy
from mainmast_auth._key_ring import KeyRing
from mainmast_auth._keys import (
    SigningAlgorithm,
    SigningKey,
    generate_signing_key,
    hmac_signing_key,
)
from mainmast_auth._tokens import AccessTokenIssuer

NOW = 1_750_000_000
ISSUER, AUDIENCE = "https://auth.example.test", "mainmast"


def _decoded(segment: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return value


def _issuer(**options: Any) -> AccessTokenIssuer:
    return AccessTokenIssuer(issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW + 0.7, **options)


def _verifier(keys: KeySet, **policy: Any) -> TokenVerifier:
    return TokenVerifier(
        keys, VerificationPolicy(issuer=ISSUER, audience=AUDIENCE, **policy), clock=lambda: NOW
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    created = datetime.fromtimestamp(NOW, UTC)
    return {
        algorithm.value: generate_signing_key(algorithm, create_time=created)
        for algorithm in (SigningAlgorithm.EDDSA, SigningAlgorithm.ES256, SigningAlgorithm.RS256)
    }


def test_the_header_and_claims_are_rfc_9068s(keys: dict[str, SigningKey]) -> None:
    key = keys["EdDSA"]
    issued = _issuer().issue(
        key,
        subject="tenants/acme/serviceAccounts/billing",
        tenant="tenants/acme",
        roles=["tenants/acme/roles/member"],
        scopes=["invoices:read", "invoices:write"],
        client_id="billing-client",
    )
    header_segment, payload_segment, _ = issued.token.split(".")
    assert _decoded(header_segment) == {"alg": "EdDSA", "typ": "at+jwt", "kid": key.key_id}
    assert _decoded(payload_segment) == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "tenants/acme/serviceAccounts/billing",
        "tid": "tenants/acme",
        "roles": ["tenants/acme/roles/member"],
        "scope": "invoices:read invoices:write",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "jti": issued.token_id,
        "client_id": "billing-client",
    }
    assert issued.issue_time == datetime.fromtimestamp(NOW, UTC)
    assert issued.expire_time - issued.issue_time == timedelta(minutes=15)
    assert issued.key_id == key.key_id
    assert issued.token not in repr(issued)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_tokens_of_each_algorithm_verify_from_the_published_jwks(
    keys: dict[str, SigningKey], algorithm: str
) -> None:
    key = keys[algorithm]
    issued = _issuer().issue(key, subject="tenants/acme/users/alice", tenant="tenants/acme")
    published = KeySet.from_jwks(KeyRing(key).jwks(datetime.fromtimestamp(NOW, UTC)))
    verified = _verifier(published).verify(issued.token)
    assert (verified.subject, verified.tenant, verified.token_id) == (
        "tenants/acme/users/alice",
        "tenants/acme",
        issued.token_id,
    )
    assert verified.scopes == ()
    assert "scope" not in verified.claims


def test_hs256_tokens_verify_with_the_secret_when_allowed() -> None:
    key = hmac_signing_key(b"z" * 48, create_time=datetime.fromtimestamp(NOW, UTC))
    issued = _issuer().issue(key, subject="tenants/acme/users/alice", tenant="tenants/acme")
    verifier = _verifier(KeySet([key.verification_key()]), algorithms=frozenset({"HS256"}))
    assert verifier.verify(issued.token).algorithm == "HS256"


def test_every_token_gets_its_own_id(keys: dict[str, SigningKey]) -> None:
    issuer = _issuer()
    ids = {
        issuer.issue(keys["EdDSA"], subject="tenants/a1/users/u", tenant="tenants/a1").token_id
        for _ in range(50)
    }
    assert len(ids) == 50


def test_the_lifetime_is_configurable(keys: dict[str, SigningKey]) -> None:
    issued = _issuer(lifetime=timedelta(minutes=5)).issue(
        keys["EdDSA"], subject="tenants/a1/users/u", tenant="tenants/a1"
    )
    assert issued.expire_time - issued.issue_time == timedelta(minutes=5)


@pytest.mark.parametrize("scope", ["", "two words", 'quote"d', "back\\slash", "caf\u00e9"])
def test_a_scope_that_is_no_rfc_6749_scope_token_is_refused(
    keys: dict[str, SigningKey], scope: str
) -> None:
    with pytest.raises(ValueError, match="scope token"):
        _issuer().issue(
            keys["EdDSA"], subject="tenants/a1/users/u", tenant="tenants/a1", scopes=[scope]
        )


def test_a_token_no_verifier_would_accept_is_not_issued(keys: dict[str, SigningKey]) -> None:
    roles = [f"tenants/acme/roles/role-{number:04}" for number in range(300)]
    with pytest.raises(ValueError, match="8192"):
        _issuer().issue(
            keys["EdDSA"], subject="tenants/acme/users/u", tenant="tenants/acme", roles=roles
        )


@pytest.mark.parametrize(
    "options",
    [{"issuer": ""}, {"audience": ""}, {"lifetime": timedelta(0)}],
)
def test_an_issuer_needs_an_issuer_an_audience_and_a_lifetime(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        AccessTokenIssuer(**({"issuer": ISSUER, "audience": AUDIENCE} | options))


def test_a_subject_and_a_tenant_are_required(keys: dict[str, SigningKey]) -> None:
    with pytest.raises(ValueError, match="subject and a tenant"):
        _issuer().issue(keys["EdDSA"], subject="", tenant="tenants/acme")
