"""Access token verification: every rule, each broken on its own, with the reason it gives.

Tokens are made here with pyjwt (well-formed ones) or by hand (the hostile ones pyjwt
refuses to produce), signed with real keys; the verifier's clock is fixed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import OKPAlgorithm

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.auth._jwks import KeySet, VerificationKey
from mainmast.auth._verify import TokenVerifier, VerificationPolicy, VerifiedToken
from mainmast.errors import UnauthenticatedError

NOW = 1_750_000_000.0
ISSUER = "https://auth.example.test"
AUDIENCE = "orders-api"
KEY_ID = "primary-key"


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json_segment(value: object) -> bytes:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def valid_claims(**changes: Any) -> dict[str, Any]:
    """Claims of a token that verifies at NOW; `changes` set (or, with None, drop) claims."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "tenants/acme/users/alice",
        "tid": "tenants/acme",
        "roles": ["tenants/acme/roles/admin"],
        "scope": "orders:read orders:write",
        "iat": int(NOW) - 60,
        "nbf": int(NOW) - 60,
        "exp": int(NOW) + 840,
        "jti": str(uuid.uuid4()),
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


@dataclass
class Signer:
    """An Ed25519 key with the verifier that trusts it."""

    private_key: ed25519.Ed25519PrivateKey
    verifier: TokenVerifier

    def token(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        """A pyjwt-made token of `claims` (valid ones by default) with extra header members."""
        return jwt.encode(
            valid_claims() if claims is None else claims,
            self.private_key,
            algorithm="EdDSA",
            headers={"kid": KEY_ID, "typ": "at+jwt", **header},
        )

    def hand_made(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """A token with exactly this header, signed with the key whatever the header says."""
        signing_input = _json_segment(header) + b"." + _json_segment(claims)
        signature = self.private_key.sign(signing_input)
        return (signing_input + b"." + _b64(signature)).decode()


def make_verifier(
    keys: KeySet, policy: VerificationPolicy | None = None, **options: Any
) -> TokenVerifier:
    return TokenVerifier(
        keys,
        policy or VerificationPolicy(issuer=ISSUER, audience=AUDIENCE),
        clock=lambda: NOW,
        **options,
    )


@pytest.fixture
def signer() -> Signer:
    private_key = ed25519.Ed25519PrivateKey.generate()
    keys = KeySet([VerificationKey.from_public_key(KEY_ID, "EdDSA", private_key.public_key())])
    return Signer(private_key, make_verifier(keys))


def rejection(verifier: TokenVerifier, token: str | bytes) -> UnauthenticatedError:
    with pytest.raises(UnauthenticatedError) as caught:
        verifier.verify(token)
    error = caught.value
    assert error.domain == AUTH_ERROR_DOMAIN
    return error


def assert_rejected(
    verifier: TokenVerifier, token: str | bytes, reason: AuthErrorReason
) -> UnauthenticatedError:
    error = rejection(verifier, token)
    assert error.reason == reason.value, error.message
    return error


# A valid token


def test_a_valid_token_verifies_and_its_claims_come_back_typed(signer: Signer) -> None:
    claims = valid_claims(client_id="orders-worker")
    verified = signer.verifier.verify(signer.token(claims))
    assert verified == VerifiedToken(
        subject="tenants/acme/users/alice",
        tenant="tenants/acme",
        token_id=claims["jti"],
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        roles=("tenants/acme/roles/admin",),
        scopes=("orders:read", "orders:write"),
        issued_at=NOW - 60,
        expires_at=NOW + 840,
        not_before=NOW - 60,
        client_id="orders-worker",
        key_id=KEY_ID,
        algorithm="EdDSA",
        claims=claims,
    )
    assert verified.claims["jti"] == claims["jti"]
    assert verified.expire_time.timestamp() == NOW + 840
    assert verified.issue_time.timestamp() == NOW - 60


def test_bytes_verify_like_text(signer: Signer) -> None:
    assert signer.verifier.verify(signer.token().encode()).subject == "tenants/acme/users/alice"


def test_claims_of_a_verified_token_are_read_only(signer: Signer) -> None:
    verified = signer.verifier.verify(signer.token())
    with pytest.raises(TypeError):
        verified.claims["sub"] = "tenants/other/users/mallory"  # type: ignore[index]


@pytest.mark.parametrize(
    ("algorithm", "private_key"),
    [
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
)
def test_es256_and_rs256_tokens_verify_with_their_keys(algorithm: str, private_key: Any) -> None:
    keys = KeySet([VerificationKey.from_public_key("k1", algorithm, private_key.public_key())])
    token = jwt.encode(
        valid_claims(), private_key, algorithm=algorithm, headers={"kid": "k1", "typ": "at+jwt"}
    )
    assert make_verifier(keys).verify(token).algorithm == algorithm


def test_an_hs256_token_verifies_only_when_the_policy_allows_hs256() -> None:
    secret = b"s" * 16 + b"e" * 16
    keys = KeySet([VerificationKey.from_hmac_secret("hmac-key", secret)])
    token = jwt.encode(
        valid_claims(), secret, algorithm="HS256", headers={"kid": "hmac-key", "typ": "at+jwt"}
    )
    assert_rejected(make_verifier(keys), token, AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED)
    policy = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset({"HS256"}))
    assert make_verifier(keys, policy).verify(token).algorithm == "HS256"


# Size and form


def test_a_token_over_8_kib_is_refused_before_parsing(signer: Signer) -> None:
    error = assert_rejected(signer.verifier, "x" * 8193, AuthErrorReason.TOKEN_TOO_LARGE)
    assert error.metadata == {"max_bytes": "8192"}
    assert_rejected(signer.verifier, b"." * 1_000_000, AuthErrorReason.TOKEN_TOO_LARGE)


def test_the_size_limit_is_on_the_whole_token(signer: Signer) -> None:
    def token_with_filler(length: int) -> str:
        return signer.token(valid_claims(filler="f" * length))

    base = len(token_with_filler(0))
    # base64 grows by 4 characters for every 3 bytes of JSON.
    just_fits = token_with_filler((8192 - base) * 3 // 4)
    assert len(just_fits) <= 8192
    signer.verifier.verify(just_fits)
    too_large = token_with_filler((8192 - base) * 3 // 4 + 3)
    assert len(too_large) > 8192
    assert_rejected(signer.verifier, too_large, AuthErrorReason.TOKEN_TOO_LARGE)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "only-one-segment",
        "two.segments",
        "a.b.c.d",
        "!!!.e30.c2ln",
        _b64(b"not json").decode() + ".e30.c2ln",
        _b64(b"[1, 2]").decode() + ".e30.c2ln",
        _json_segment({"alg": "EdDSA"}).decode() + "=.e30.c2ln",
        "ey\u00e9.e30.c2ln",
    ],
    ids=[
        "empty",
        "one-segment",
        "two-segments",
        "four-segments",
        "header-not-base64url",
        "header-not-json",
        "header-not-an-object",
        "padded-header",
        "not-ascii",
    ],
)
def test_text_that_is_no_compact_jws_is_malformed(signer: Signer, token: str) -> None:
    assert_rejected(signer.verifier, token, AuthErrorReason.TOKEN_MALFORMED)


def test_a_signed_payload_that_is_not_a_json_object_is_malformed(signer: Signer) -> None:
    header = _json_segment({"alg": "EdDSA", "typ": "at+jwt", "kid": KEY_ID})
    for payload in (b"not json", b"[1, 2, 3]", b'"a string"'):
        signing_input = header + b"." + _b64(payload)
        token = signing_input + b"." + _b64(signer.private_key.sign(signing_input))
        assert_rejected(signer.verifier, token, AuthErrorReason.TOKEN_MALFORMED)


# The algorithm


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none_is_refused_in_any_spelling(signer: Signer, algorithm: str) -> None:
    header = _json_segment({"alg": algorithm, "typ": "at+jwt", "kid": KEY_ID})
    token = (header + b"." + _json_segment(valid_claims()) + b".").decode()
    assert_rejected(signer.verifier, token, AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED)


def test_a_missing_or_non_string_alg_is_refused(signer: Signer) -> None:
    for header in ({"typ": "at+jwt", "kid": KEY_ID}, {"alg": ["EdDSA"], "kid": KEY_ID}):
        error = assert_rejected(
            signer.verifier,
            signer.hand_made(header, valid_claims()),
            AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED,
        )
        assert error.metadata == {"algorithm": "<invalid>"}


def test_an_algorithm_outside_the_allow_list_is_refused() -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    keys = KeySet([VerificationKey.from_public_key("ec-key", "ES256", private_key.public_key())])
    token = jwt.encode(
        valid_claims(), private_key, algorithm="ES256", headers={"kid": "ec-key", "typ": "at+jwt"}
    )
    eddsa_only = VerificationPolicy(
        issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset({"EdDSA"})
    )
    error = assert_rejected(
        make_verifier(keys, eddsa_only), token, AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED
    )
    assert error.metadata == {"algorithm": "ES256"}
    secret = b"k" * 64
    hs512 = jwt.encode(valid_claims(), secret, algorithm="HS512", headers={"kid": "ec-key"})
    assert_rejected(make_verifier(keys), hs512, AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED)


def test_hs256_signed_with_the_rsa_public_key_as_secret_is_refused() -> None:
    # The classic algorithm confusion: the attacker knows the public key (it is public),
    # uses its PEM as an HMAC secret, and hopes the verifier does the same.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keys = KeySet([VerificationKey.from_public_key("rsa-key", "RS256", rsa_key.public_key())])
    header = _json_segment({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-key"})
    signing_input = header + b"." + _json_segment(valid_claims(sub="tenants/acme/users/root"))
    forged_signature = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    forged = signing_input + b"." + _b64(forged_signature)
    # Even a policy that allows HS256 (a secret is configured elsewhere) refuses it: the
    # key named by kid is RS256 and verifies RS256 only.
    both = VerificationPolicy(
        issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset({"RS256", "HS256"})
    )
    for policy in (VerificationPolicy(issuer=ISSUER, audience=AUDIENCE), both):
        assert_rejected(
            make_verifier(keys, policy), forged, AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED
        )


def test_an_eddsa_token_naming_an_hs256_key_is_refused(signer: Signer) -> None:
    keys = KeySet([VerificationKey.from_hmac_secret(KEY_ID, b"h" * 32)])
    policy = VerificationPolicy(
        issuer=ISSUER, audience=AUDIENCE, algorithms=frozenset({"EdDSA", "HS256"})
    )
    assert_rejected(
        make_verifier(keys, policy), signer.token(), AuthErrorReason.TOKEN_ALGORITHM_NOT_ALLOWED
    )


# The key id


def test_an_unknown_kid_is_refused_and_named(signer: Signer) -> None:
    error = assert_rejected(
        signer.verifier, signer.token(kid="retired-key"), AuthErrorReason.TOKEN_KEY_UNKNOWN
    )
    assert error.metadata == {"key_id": "retired-key"}


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "..\\..\\keys\\primary",
        "/dev/null",
        "primary-key' OR '1'='1",
        'primary-key"; DROP TABLE signing_keys; --',
        "key id",
        "key%2F..",
        "primary-key\x00",
        "",
        "k" * 129,
        123,
        None,
        ["primary-key"],
    ],
)
def test_a_kid_with_path_or_sql_characters_is_refused_unechoed(signer: Signer, kid: object) -> None:
    header = {"alg": "EdDSA", "typ": "at+jwt"} | ({} if kid is None else {"kid": kid})
    error = assert_rejected(
        signer.verifier, signer.hand_made(header, valid_claims()), AuthErrorReason.TOKEN_KEY_UNKNOWN
    )
    assert error.metadata == {}
    assert error.message == "The token has no well-formed key id (kid)."


# Headers that point at keys: never followed


class _KeyServer:
    """A JWKS server on loopback that counts the requests it gets."""

    def __init__(self, document: bytes) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/jwks.json"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def attacker_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def key_server(attacker_key: ed25519.Ed25519PrivateKey) -> Iterator[_KeyServer]:
    public_jwk = OKPAlgorithm.to_jwk(attacker_key.public_key(), as_dict=True)
    document = json.dumps({"keys": [public_jwk | {"kid": "attacker", "alg": "EdDSA"}]}).encode()
    server = _KeyServer(document)
    yield server
    server.stop()


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_jku_and_x5u_are_never_fetched(
    signer: Signer,
    attacker_key: ed25519.Ed25519PrivateKey,
    key_server: _KeyServer,
    member: str,
) -> None:
    forged = jwt.encode(
        valid_claims(),
        attacker_key,
        algorithm="EdDSA",
        headers={"kid": "attacker", "typ": "at+jwt", member: key_server.url},
    )
    assert_rejected(signer.verifier, forged, AuthErrorReason.TOKEN_KEY_UNKNOWN)
    # With our own key and kid the header is simply ignored: the token verifies.
    signer.verifier.verify(signer.token(**{member: key_server.url}))
    assert key_server.requests == []


def test_an_embedded_jwk_or_x5c_is_never_used(
    signer: Signer, attacker_key: ed25519.Ed25519PrivateKey
) -> None:
    attacker_jwk = OKPAlgorithm.to_jwk(attacker_key.public_key(), as_dict=True)
    for member, value in (("jwk", attacker_jwk), ("x5c", ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"])):
        forged = jwt.encode(
            valid_claims(),
            attacker_key,
            algorithm="EdDSA",
            headers={"kid": KEY_ID, "typ": "at+jwt", member: value},
        )
        assert_rejected(signer.verifier, forged, AuthErrorReason.TOKEN_SIGNATURE_INVALID)


# crit


@pytest.mark.parametrize(
    "header",
    [
        {"crit": ["exp-extension"], "exp-extension": True},
        {"crit": ["b64"], "b64": False},
        {"crit": []},
        {"crit": "b64"},
    ],
)
def test_any_crit_header_is_refused(signer: Signer, header: dict[str, Any]) -> None:
    full_header = {"alg": "EdDSA", "typ": "at+jwt", "kid": KEY_ID} | header
    assert_rejected(
        signer.verifier,
        signer.hand_made(full_header, valid_claims()),
        AuthErrorReason.TOKEN_CRITICAL_HEADER_UNSUPPORTED,
    )


# The signature


def test_a_stripped_signature_is_refused(signer: Signer) -> None:
    header, payload, _ = signer.token().split(".")
    assert_rejected(
        signer.verifier, f"{header}.{payload}.", AuthErrorReason.TOKEN_SIGNATURE_INVALID
    )


def test_a_signature_by_another_key_is_refused(
    signer: Signer, attacker_key: ed25519.Ed25519PrivateKey
) -> None:
    forged = jwt.encode(
        valid_claims(), attacker_key, algorithm="EdDSA", headers={"kid": KEY_ID, "typ": "at+jwt"}
    )
    assert_rejected(signer.verifier, forged, AuthErrorReason.TOKEN_SIGNATURE_INVALID)


def test_claims_changed_under_a_valid_signature_are_refused(signer: Signer) -> None:
    header, _, signature = signer.token().split(".")
    elevated = _json_segment(valid_claims(roles=["roles/platform-admin"])).decode()
    assert_rejected(
        signer.verifier, f"{header}.{elevated}.{signature}", AuthErrorReason.TOKEN_SIGNATURE_INVALID
    )


def test_a_flipped_signature_bit_is_refused(signer: Signer) -> None:
    header, payload, signature = signer.token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    tampered = f"{header}.{payload}.{_b64(bytes(raw)).decode()}"
    assert_rejected(signer.verifier, tampered, AuthErrorReason.TOKEN_SIGNATURE_INVALID)


def test_a_second_spelling_of_the_same_signature_is_refused(signer: Signer) -> None:
    token = signer.token()
    header, payload, signature = token.split(".")
    # 64 bytes are 86 base64url characters; the last one carries 4 unused bits. Setting
    # one gives another text that decodes to the same signature.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    respelled = signature[:-1] + alphabet[last | 0b0001]
    assert respelled != signature
    assert base64.urlsafe_b64decode(respelled + "==") == base64.urlsafe_b64decode(signature + "==")
    assert_rejected(
        signer.verifier, f"{header}.{payload}.{respelled}", AuthErrorReason.TOKEN_MALFORMED
    )


# The claims


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "iss", "aud", "tid"])
def test_a_missing_required_claim_is_named(signer: Signer, claim: str) -> None:
    error = assert_rejected(
        signer.verifier,
        signer.token(valid_claims(**{claim: None})),
        AuthErrorReason.TOKEN_CLAIM_MISSING,
    )
    assert error.metadata == {"claim": claim}


@pytest.mark.parametrize("claim", ["sub", "jti", "tid"])
def test_an_empty_required_claim_counts_as_missing(signer: Signer, claim: str) -> None:
    assert_rejected(
        signer.verifier,
        signer.token(valid_claims(**{claim: ""})),
        AuthErrorReason.TOKEN_CLAIM_MISSING,
    )


def test_an_expired_token_is_refused_beyond_the_leeway(signer: Signer) -> None:
    signer.verifier.verify(signer.token(valid_claims(exp=int(NOW) - 29)))
    error = assert_rejected(
        signer.verifier,
        signer.token(valid_claims(exp=int(NOW) - 30)),
        AuthErrorReason.TOKEN_EXPIRED,
    )
    assert error.metadata == {"expire_time": "2025-06-15T15:06:10Z"}


def test_a_token_not_yet_valid_is_refused_beyond_the_leeway(signer: Signer) -> None:
    signer.verifier.verify(signer.token(valid_claims(nbf=int(NOW) + 30)))
    error = assert_rejected(
        signer.verifier,
        signer.token(valid_claims(nbf=int(NOW) + 31)),
        AuthErrorReason.TOKEN_NOT_YET_VALID,
    )
    assert error.metadata == {"not_before_time": "2025-06-15T15:07:11Z"}


def test_a_token_issued_in_the_future_is_not_yet_valid(signer: Signer) -> None:
    assert_rejected(
        signer.verifier,
        signer.token(valid_claims(iat=int(NOW) + 120, nbf=None)),
        AuthErrorReason.TOKEN_NOT_YET_VALID,
    )


def test_the_leeway_is_configurable(signer: Signer) -> None:
    no_leeway = make_verifier(
        signer.verifier.keys,
        VerificationPolicy(issuer=ISSUER, audience=AUDIENCE, leeway_seconds=0),
    )
    assert_rejected(
        no_leeway, signer.token(valid_claims(exp=int(NOW) - 1)), AuthErrorReason.TOKEN_EXPIRED
    )


@pytest.mark.parametrize("issuer", ["https://evil.example.test", ISSUER + "/", ISSUER.upper()])
def test_another_issuer_is_refused(signer: Signer, issuer: str) -> None:
    assert_rejected(
        signer.verifier,
        signer.token(valid_claims(iss=issuer)),
        AuthErrorReason.TOKEN_ISSUER_MISMATCH,
    )


@pytest.mark.parametrize(
    "audience", ["billing-api", [AUDIENCE, "billing-api"], ["billing-api"], [], 42]
)
def test_another_audience_or_a_shared_one_is_refused_when_strict(
    signer: Signer, audience: object
) -> None:
    claims = valid_claims()
    claims["aud"] = audience
    reason = (
        AuthErrorReason.TOKEN_CLAIM_MISSING
        if audience == []
        else AuthErrorReason.TOKEN_AUDIENCE_MISMATCH
    )
    assert_rejected(signer.verifier, signer.token(claims), reason)


def test_a_one_element_audience_list_naming_us_is_exact(signer: Signer) -> None:
    signer.verifier.verify(signer.token(valid_claims(aud=[AUDIENCE])))


def test_a_shared_audience_is_accepted_when_not_strict(signer: Signer) -> None:
    lenient = make_verifier(
        signer.verifier.keys,
        VerificationPolicy(issuer=ISSUER, audience=AUDIENCE, strict_audience=False),
    )
    verified = lenient.verify(signer.token(valid_claims(aud=["billing-api", AUDIENCE])))
    assert verified.audiences == ("billing-api", AUDIENCE)
    assert_rejected(
        lenient,
        signer.token(valid_claims(aud=["billing-api"])),
        AuthErrorReason.TOKEN_AUDIENCE_MISMATCH,
    )


@pytest.mark.parametrize(
    ("claims", "claim"),
    [
        (valid_claims(exp="tomorrow"), "exp"),
        (valid_claims(exp=True), "exp"),
        (valid_claims(nbf=[1]), "nbf"),
        (valid_claims(sub=42), "sub"),
        (valid_claims(jti=["a"]), "jti"),
        (valid_claims(tid={"name": "acme"}), "tid"),
        (valid_claims(roles="tenants/acme/roles/admin"), "roles"),
        (valid_claims(roles=[1, 2]), "roles"),
        (valid_claims(scope=["orders:read"]), "scope"),
    ],
)
def test_a_claim_of_the_wrong_type_is_malformed(
    signer: Signer, claims: dict[str, Any], claim: str
) -> None:
    error = assert_rejected(signer.verifier, signer.token(claims), AuthErrorReason.TOKEN_MALFORMED)
    assert error.metadata == {"claim": claim}


# typ


@pytest.mark.parametrize(
    ("typ", "shown"),
    [("JWT", "JWT"), ("refresh+jwt", "refresh+jwt"), ("id_token+jwt", "id_token+jwt"), (None, "")],
)
def test_an_id_or_refresh_token_is_no_access_token(
    signer: Signer, typ: str | None, shown: str
) -> None:
    header = {"alg": "EdDSA", "kid": KEY_ID} | ({} if typ is None else {"typ": typ})
    error = assert_rejected(
        signer.verifier,
        signer.hand_made(header, valid_claims()),
        AuthErrorReason.TOKEN_TYPE_MISMATCH,
    )
    assert error.metadata == {"token_type": shown}


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_every_spelling_of_the_access_token_media_type_is_accepted(
    signer: Signer, typ: str
) -> None:
    signer.verifier.verify(signer.token(typ=typ))


# Revocation


def test_a_revoked_jti_is_refused_when_a_revocation_check_is_given(signer: Signer) -> None:
    revoked_claims = valid_claims()
    seen: list[VerifiedToken] = []

    def is_revoked(token: VerifiedToken) -> bool:
        seen.append(token)
        return token.token_id == revoked_claims["jti"]

    verifier = make_verifier(signer.verifier.keys, revocation_check=is_revoked)
    assert_rejected(verifier, signer.token(revoked_claims), AuthErrorReason.TOKEN_REVOKED)
    verifier.verify(signer.token())
    assert len(seen) == 2
    # Without the check, the same token verifies: revocation is the caller's list.
    signer.verifier.verify(signer.token(revoked_claims))


def test_the_revocation_check_sees_only_tokens_that_passed_every_other_rule(
    signer: Signer,
) -> None:
    calls: list[VerifiedToken] = []
    verifier = make_verifier(signer.verifier.keys, revocation_check=lambda t: bool(calls.append(t)))
    assert_rejected(
        verifier, signer.token(valid_claims(exp=int(NOW) - 3600)), AuthErrorReason.TOKEN_EXPIRED
    )
    assert calls == []


# Keys can change


def test_replaced_keys_take_effect_for_the_next_verification(signer: Signer) -> None:
    new_key = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(
        valid_claims(), new_key, algorithm="EdDSA", headers={"kid": "next-key", "typ": "at+jwt"}
    )
    assert_rejected(signer.verifier, token, AuthErrorReason.TOKEN_KEY_UNKNOWN)
    signer.verifier.replace_keys(
        KeySet([VerificationKey.from_public_key("next-key", "EdDSA", new_key.public_key())])
    )
    assert signer.verifier.verify(token).key_id == "next-key"
    assert_rejected(signer.verifier, signer.token(), AuthErrorReason.TOKEN_KEY_UNKNOWN)


# The policy itself


@pytest.mark.parametrize(
    "options",
    [
        {"issuer": ""},
        {"audience": ""},
        {"algorithms": frozenset({"none"})},
        {"algorithms": frozenset({"EdDSA", "none"})},
        {"algorithms": frozenset({"HS512"})},
        {"algorithms": frozenset()},
        {"leeway_seconds": -1},
        {"leeway_seconds": 3600},
        {"max_token_bytes": 0},
        {"required_claims": ("iss", "aud", "sub", "iat", "jti")},
    ],
)
def test_a_policy_that_would_weaken_verification_cannot_be_made(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        VerificationPolicy(**({"issuer": ISSUER, "audience": AUDIENCE} | options))


def test_the_default_policy_is_the_documented_one() -> None:
    policy = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE)
    assert policy.algorithms == frozenset({"EdDSA", "ES256", "RS256"})
    assert policy.leeway_seconds == 30
    assert policy.strict_audience is True
    assert policy.max_token_bytes == 8192
    assert policy.token_type == "at+jwt"
    assert set(policy.required_claims) >= {"exp", "iat", "sub", "jti", "iss", "aud", "tid"}


# Properties


@pytest.fixture(scope="module")
def sample() -> tuple[str, TokenVerifier]:
    """One valid token and its verifier, shared by the property tests."""
    private_key = ed25519.Ed25519PrivateKey.generate()
    keys = KeySet([VerificationKey.from_public_key(KEY_ID, "EdDSA", private_key.public_key())])
    return Signer(private_key, make_verifier(keys)).token(), make_verifier(keys)


_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="


@given(position=st.integers(0, 10_000), replacement=st.sampled_from(_TOKEN_ALPHABET))
@settings(max_examples=300, deadline=None)
def test_any_one_character_change_to_a_valid_token_is_refused(
    sample: tuple[str, TokenVerifier], position: int, replacement: str
) -> None:
    token, verifier = sample
    position %= len(token)
    changed = token[:position] + replacement + token[position + 1 :]
    if changed == token:
        verifier.verify(changed)
        return
    with pytest.raises(UnauthenticatedError):
        verifier.verify(changed)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
@settings(max_examples=300, deadline=None)
def test_arbitrary_input_fails_only_with_unauthenticated_error(
    sample: tuple[str, TokenVerifier], token: str | bytes
) -> None:
    with pytest.raises(UnauthenticatedError):
        sample[1].verify(token)


_HEADER_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=3),
)


@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "crit", "jku", "b64", "zip"]), _HEADER_VALUES
    )
)
@settings(max_examples=200, deadline=None)
def test_hostile_headers_fail_only_with_unauthenticated_error(
    sample: tuple[str, TokenVerifier], header: dict[str, Any]
) -> None:
    token = (_json_segment(header) + b"." + _json_segment(valid_claims()) + b".c2ln").decode()
    with pytest.raises(UnauthenticatedError):
        sample[1].verify(token)


def test_the_public_names_of_mainmast_auth_are_pinned() -> None:
    import mainmast.auth  # noqa: PLC0415 - the package itself is under test

    assert mainmast.auth.__all__ == [
        "AUTH_ERROR_DOMAIN",
        "DEV_PRINCIPAL",
        "PLATFORM_ADMIN_ROLE",
        "AsyncRevocationCheck",
        "AuthClient",
        "AuthClientConfig",
        "AuthErrorReason",
        "CallerAuthSettings",
        "CallerAuthentication",
        "CheckQuery",
        "CreatedServiceAccount",
        "FetchedJwks",
        "Introspection",
        "JwksCache",
        "KeyRotation",
        "KeySet",
        "KeySetError",
        "Page",
        "ResourceState",
        "RoleAssignment",
        "RolePermission",
        "ServiceAccount",
        "ServiceAccountTokens",
        "SigningKeyInfo",
        "Tenant",
        "TokenPair",
        "TokenVerifier",
        "User",
        "VerificationKey",
        "VerificationPolicy",
        "VerifiedToken",
        "bearer_token",
        "require_permission",
        "token_authenticator",
    ]
    assert all(hasattr(mainmast.auth, name) for name in mainmast.auth.__all__)


# -- remembered tokens ------------------------------------------------------------------


def _trusting(signer: Signer, clock: Any, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        signer.verifier.keys,
        VerificationPolicy(issuer=ISSUER, audience=AUDIENCE, leeway_seconds=30),
        clock=clock,
        **options,
    )


def test_a_remembered_token_still_expires(signer: Signer) -> None:
    now = [NOW]
    verifier = _trusting(signer, lambda: now[0])
    token = signer.token()
    first = verifier.verify(token)

    now[0] = NOW + 840 + 29  # within the leeway: still accepted, from memory
    again = verifier.verify(token)
    now[0] = NOW + 840 + 30

    assert again is first
    assert_rejected(verifier, token, AuthErrorReason.TOKEN_EXPIRED)


def test_a_remembered_token_is_verified_again_once_the_keys_change(signer: Signer) -> None:
    verifier = _trusting(signer, lambda: NOW)
    token = signer.token()
    verifier.verify(token)
    other = ed25519.Ed25519PrivateKey.generate().public_key()

    verifier.replace_keys(KeySet([VerificationKey.from_public_key("other", "EdDSA", other)]))

    assert_rejected(verifier, token, AuthErrorReason.TOKEN_KEY_UNKNOWN)


def test_the_revocation_check_runs_on_every_presentation_of_a_remembered_token(
    signer: Signer,
) -> None:
    revoked: set[str] = set()
    verifier = _trusting(signer, lambda: NOW, revocation_check=lambda t: t.token_id in revoked)
    token = signer.token()
    verified = verifier.verify(token)

    revoked.add(verified.token_id)

    assert_rejected(verifier, token, AuthErrorReason.TOKEN_REVOKED)


def test_a_tampered_copy_of_a_remembered_token_is_not_remembered(signer: Signer) -> None:
    verifier = _trusting(signer, lambda: NOW)
    token = signer.token()
    verifier.verify(token)
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]

    assert_rejected(
        verifier, f"{header}.{payload}.{flipped}", AuthErrorReason.TOKEN_SIGNATURE_INVALID
    )


def test_the_memory_of_verified_tokens_is_bounded(signer: Signer) -> None:
    verifier = _trusting(signer, lambda: NOW, cache_size=3)
    tokens = [signer.token() for _ in range(10)]
    for token in tokens:
        verifier.verify(token)
    unremembered = _trusting(signer, lambda: NOW, cache_size=0)

    assert len(verifier._verified) == 3
    assert list(verifier._verified) == tokens[-3:]
    assert unremembered.verify(tokens[0]).token_id == verifier.verify(tokens[0]).token_id
    assert len(unremembered._verified) == 0
    with pytest.raises(ValueError, match="cache_size"):
        _trusting(signer, lambda: NOW, cache_size=-1)
