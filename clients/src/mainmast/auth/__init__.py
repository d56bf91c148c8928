"""mainmast.auth: local verification of mainmast access tokens, and the auth contract.

`TokenVerifier(KeySet.from_jwks(jwks), VerificationPolicy(issuer, audience)).verify(token)`
checks a token with no call to the auth service: signature with a key bound to one
algorithm, type `at+jwt`, issuer, audience, times with leeway, size; every failure an
`UnauthenticatedError` with a specific reason (`AuthErrorReason`) in `AUTH_ERROR_DOMAIN`.
The generated v1 contract is in `mainmast.auth.v1`.
"""

from mainmast.auth._jwks import KeySet, KeySetError, VerificationKey
from mainmast.auth._reasons import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.auth._verify import TokenVerifier, VerificationPolicy, VerifiedToken

__all__ = [
    "AUTH_ERROR_DOMAIN",
    "AuthErrorReason",
    "KeySet",
    "KeySetError",
    "TokenVerifier",
    "VerificationKey",
    "VerificationPolicy",
    "VerifiedToken",
]
