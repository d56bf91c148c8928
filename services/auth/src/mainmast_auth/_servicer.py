"""The gRPC face of the token endpoints: protobuf in, `TokenService` calls, protobuf out.

GetJwks, IssueToken, RevokeTokens, IntrospectToken and RotateSigningKey are served here;
every other method of the contract is inherited from the generated base, which answers
UNIMPLEMENTED. Errors are raised as mainmast errors and turned into rich statuses by the
runtime's ErrorInterceptor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc.aio
import orjson
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mainmast.auth._reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.auth.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    resources_pb2,
)
from mainmast.errors import ValidationError
from mainmast.runtime import current_principal

from ._keys import SigningKey
from ._token_service import ActiveRefreshToken, IssuedTokens, TokenService

_Context = grpc.aio.ServicerContext[Any, Any]
_MAX_REASON_CHARS = 256

# RFC 7517/7518 member names -> JsonWebKey fields.
_JWK_FIELDS = {
    "kty": "key_type",
    "kid": "key_id",
    "use": "use",
    "alg": "algorithm",
    "crv": "curve",
    "x": "x",
    "y": "y",
    "n": "modulus",
    "e": "exponent",
}


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _json_web_key(jwk: dict[str, str]) -> resources_pb2.JsonWebKey:
    return resources_pb2.JsonWebKey(
        **{_JWK_FIELDS[name]: value for name, value in jwk.items() if name in _JWK_FIELDS}
    )


def _signing_key(key: SigningKey) -> resources_pb2.SigningKey:
    message = resources_pb2.SigningKey(
        name=f"signingKeys/{key.key_id}",
        key_id=key.key_id,
        algorithm=key.algorithm.value,
        state=(
            resources_pb2.SigningKey.STATE_ACTIVE
            if key.retire_time is None
            else resources_pb2.SigningKey.STATE_RETIRED
        ),
        create_time=_timestamp(key.create_time),
    )
    if key.is_published:
        message.public_key.CopyFrom(_json_web_key(key.public_jwk()))
    if key.retire_time is not None:
        message.retire_time.CopyFrom(_timestamp(key.retire_time))
    if key.expire_time is not None:
        message.expire_time.CopyFrom(_timestamp(key.expire_time))
    return message


def _issue_response(issued: IssuedTokens) -> auth_service_pb2.IssueTokenResponse:
    access = issued.access
    response = auth_service_pb2.IssueTokenResponse(
        access_token=access.token,
        token_type="Bearer",  # noqa: S106 -- the RFC 6750 token type, not a secret
        expire_time=_timestamp(access.expire_time),
        scopes=access.scopes,
        token_id=access.token_id,
        subject=access.subject,
        tenant=access.tenant,
    )
    if issued.refresh_token is not None and issued.refresh_expire_time is not None:
        response.refresh_token = issued.refresh_token
        response.refresh_token_expire_time.CopyFrom(_timestamp(issued.refresh_expire_time))
    return response


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """The token endpoints of `mainmast.auth.v1.AuthService` over a `TokenService`."""

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    async def GetJwks(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.GetJwksRequest, context: _Context
    ) -> auth_service_pb2.GetJwksResponse:
        """Every public key that still verifies, active first, as messages and as JSON."""
        ring, now = await self._tokens.jwks()
        document = ring.jwks(now)
        max_age = Duration()
        max_age.FromTimedelta(self._tokens.jwks_max_age)
        return auth_service_pb2.GetJwksResponse(
            keys=[_json_web_key(jwk) for jwk in document["keys"]],
            json_document=orjson.dumps(document).decode(),
            max_age=max_age,
        )

    async def IssueToken(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.IssueTokenRequest, context: _Context
    ) -> auth_service_pb2.IssueTokenResponse:
        """Issue tokens for exactly one grant: password, client credentials or refresh."""
        grant = request.WhichOneof("grant")
        if grant == "password":
            issued = await self._tokens.password_grant(
                request.password.tenant,
                request.password.username,
                request.password.password,
                request.scopes,
            )
        elif grant == "client_credentials":
            issued = await self._tokens.client_credentials_grant(
                request.client_credentials.client_id,
                request.client_credentials.client_secret,
                request.scopes,
            )
        elif grant == "refresh_token":
            issued = await self._tokens.refresh_grant(request.refresh_token.refresh_token)
        else:
            raise ValidationError(
                "Exactly one grant must be set: password, client_credentials or refresh_token.",
                reason=AuthErrorReason.GRANT_MISSING,
                domain=AUTH_ERROR_DOMAIN,
            )
        return _issue_response(issued)

    async def RevokeTokens(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.RevokeTokensRequest, context: _Context
    ) -> auth_service_pb2.RevokeTokensResponse:
        """Revoke a token by value, an access token by id, or every token of a subject."""
        caller = current_principal().subject
        why = request.reason[:_MAX_REASON_CHARS]
        target = request.WhichOneof("target")
        if target == "token":
            revoke_time = await self._tokens.revoke_token(request.token, why=why)
        elif target == "token_id":
            revoke_time = await self._tokens.revoke_token_id(caller, request.token_id, why=why)
        elif target == "subject":
            revoke_time = await self._tokens.revoke_subject(caller, request.subject, why=why)
        else:
            raise ValidationError(
                "Exactly one target must be set: token, token_id or subject.",
                reason=AuthErrorReason.REVOKE_TARGET_MISSING,
                domain=AUTH_ERROR_DOMAIN,
            )
        return auth_service_pb2.RevokeTokensResponse(revoke_time=_timestamp(revoke_time))

    async def IntrospectToken(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.IntrospectTokenRequest, context: _Context
    ) -> auth_service_pb2.IntrospectTokenResponse:
        """RFC 7662: the token's claims when active, else only `active = false`."""
        verified = await self._tokens.introspect(request.token)
        if verified is None:
            return auth_service_pb2.IntrospectTokenResponse(active=False)
        if isinstance(verified, ActiveRefreshToken):
            return auth_service_pb2.IntrospectTokenResponse(
                active=True,
                scopes=verified.scopes,
                username=verified.subject.rpartition("/")[2],
                token_type="refresh_token",  # noqa: S106 -- an RFC 7662 token type, not a secret
                expire_time=_timestamp(verified.expire_time),
                issue_time=_timestamp(verified.issue_time),
                subject=verified.subject,
                tenant=verified.tenant,
            )
        response = auth_service_pb2.IntrospectTokenResponse(
            active=True,
            scopes=verified.scopes,
            client_id=verified.client_id or "",
            username="" if verified.client_id else verified.subject.rpartition("/")[2],
            token_type="access_token",  # noqa: S106 -- an RFC 7662 token type, not a secret
            expire_time=_timestamp(verified.expire_time),
            issue_time=_timestamp(verified.issue_time),
            subject=verified.subject,
            audiences=verified.audiences,
            issuer=verified.issuer,
            token_id=verified.token_id,
            tenant=verified.tenant or "",
            roles=verified.roles,
        )
        if verified.not_before is not None:
            response.not_before_time.FromSeconds(int(verified.not_before))
        return response

    async def RotateSigningKey(  # noqa: N802 -- the contract's method name
        self, request: auth_service_pb2.RotateSigningKeyRequest, context: _Context
    ) -> auth_service_pb2.RotateSigningKeyResponse:
        """Make a new active key; the old one stays published until its tokens expire."""
        rotation = await self._tokens.rotate_signing_key(
            current_principal().subject, request.algorithm
        )
        return auth_service_pb2.RotateSigningKeyResponse(
            signing_key=_signing_key(rotation.active),
            retired_signing_key=_signing_key(rotation.retired),
        )
