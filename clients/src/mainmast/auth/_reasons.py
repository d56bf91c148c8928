"""The auth error domain and reasons, as the auth package's modules and the auth service
import them; they live in `mainmast._auth_reasons` (see there)."""

from mainmast._auth_reasons import AUTH_ERROR_DOMAIN, AuthErrorReason

__all__ = ["AUTH_ERROR_DOMAIN", "AuthErrorReason"]
