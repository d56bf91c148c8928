"""The `reason` and `domain` of the errors the auth service and local verification raise.

A leaf module outside the `mainmast.auth` package, so that what the auth package itself is
built on (the SDK clients' shared base, `mainmast._grpc_client`) can raise these errors
without importing the package; `mainmast.auth` gives them as its public names.

The reasons are value names of `mainmast.auth.v1.ErrorReason` (error_reason.proto), the
wire contract; a test pins every member here to a value of that enum, so the two cannot
drift apart. Only the reasons raised in Python code appear here.
"""

# ruff: noqa: S105 -- the values are error reason names, not passwords

from __future__ import annotations

import enum
from typing import Final

AUTH_ERROR_DOMAIN: Final = "auth.mainmast.dev"
"""The ErrorInfo `domain` of every auth error, raised by the service or by the SDK."""


class AuthErrorReason(enum.StrEnum):
    """ErrorInfo reasons of the auth service, each the name of an `ErrorReason` value."""

    CREDENTIALS_MISSING = "CREDENTIALS_MISSING"
    """No `authorization: Bearer <token>` was presented."""
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    """A login failed; which part was wrong is never said."""
    TOKEN_MALFORMED = "TOKEN_MALFORMED"
    """The token is not a well-formed compact JWS, or a claim has the wrong type."""
    TOKEN_TOO_LARGE = "TOKEN_TOO_LARGE"
    """The token is larger than the policy's limit."""
    TOKEN_ALGORITHM_NOT_ALLOWED = "TOKEN_ALGORITHM_NOT_ALLOWED"
    """`alg` is `none`, outside the allow-list, or not the algorithm of the key."""
    TOKEN_KEY_UNKNOWN = "TOKEN_KEY_UNKNOWN"
    """`kid` is missing, malformed, or names no known key."""
    TOKEN_CRITICAL_HEADER_UNSUPPORTED = "TOKEN_CRITICAL_HEADER_UNSUPPORTED"
    """`crit` names extensions the verifier does not implement."""
    TOKEN_SIGNATURE_INVALID = "TOKEN_SIGNATURE_INVALID"
    """The signature is missing or does not verify."""
    TOKEN_CLAIM_MISSING = "TOKEN_CLAIM_MISSING"
    """A required claim is absent or empty."""
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    """`exp` has passed, beyond the leeway."""
    TOKEN_NOT_YET_VALID = "TOKEN_NOT_YET_VALID"
    """`nbf` or `iat` lies in the future, beyond the leeway."""
    TOKEN_ISSUER_MISMATCH = "TOKEN_ISSUER_MISMATCH"
    """`iss` is not the expected issuer."""
    TOKEN_AUDIENCE_MISMATCH = "TOKEN_AUDIENCE_MISMATCH"
    """`aud` does not name the expected audience (exactly, when strict)."""
    TOKEN_TYPE_MISMATCH = "TOKEN_TYPE_MISMATCH"
    """The `typ` header is not `at+jwt`."""
    TOKEN_REVOKED = "TOKEN_REVOKED"
    """The token was revoked."""
    REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"
    """The refresh token is unknown, expired or revoked."""
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
    """An already rotated refresh token came back; its family is revoked."""
    INVALID_RESOURCE_NAME = "INVALID_RESOURCE_NAME"
    """A resource name does not have the expected pattern."""
    INVALID_RESOURCE_ID = "INVALID_RESOURCE_ID"
    """A new resource id breaks the id rules."""
    PASSWORD_POLICY_VIOLATION = "PASSWORD_POLICY_VIOLATION"
    """A new password breaks the password rules."""
    INVALID_PERMISSION = "INVALID_PERMISSION"
    """A permission is not "resource:action"."""
    ROLE_TENANT_MISMATCH = "ROLE_TENANT_MISMATCH"
    """A role of one tenant was given to a principal of another."""
    ALGORITHM_NOT_SUPPORTED = "ALGORITHM_NOT_SUPPORTED"
    """A signing algorithm other than EdDSA, ES256, RS256 (or a configured HS256)."""
    TENANT_DISABLED = "TENANT_DISABLED"
    """The tenant is disabled: its principals cannot log in and their tokens are inactive."""
    USER_DISABLED = "USER_DISABLED"
    """The user is disabled."""
    SERVICE_ACCOUNT_DISABLED = "SERVICE_ACCOUNT_DISABLED"
    """The service account is disabled."""
    PERMISSION_MISSING = "PERMISSION_MISSING"
    """The caller lacks the permission the operation needs."""
    GRANT_MISSING = "GRANT_MISSING"
    """IssueToken was called without a grant."""
    REVOKE_TARGET_MISSING = "REVOKE_TARGET_MISSING"
    """RevokeTokens was called without a token, a jti or a subject."""
    LOGIN_THROTTLED = "LOGIN_THROTTLED"
    """Too many failed logins for this name or address: locked out for `retry_after`."""
