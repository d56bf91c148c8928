"""Settings of the auth service, from `MAINMAST_AUTH_*` environment variables."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

import argon2
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mainmast.auth._jwks import MIN_HMAC_SECRET_BYTES
from mainmast.db import DATA_DIR_ENV, default_sqlite_url
from mainmast.runtime import ListenAddress, OptionalListenAddress, ServiceSettings

from ._login_throttle import LoginLimits
from ._passwords import ARGON2ID_MINIMUMS, argon2id_parameters

DEFAULT_SQLITE_NAME = "auth"
"""The default database is `auth.db` in the data folder (`MAINMAST_DATA_DIR`, else `./data`)."""

GENERATED_ENCRYPTION_KEY_FILE = "auth-signing-key-encryption.key"
"""Where a zero-config run keeps the encryption key it generated, inside the data folder."""


class AuthSettings(ServiceSettings):
    """The auth service's settings; every field has a working default."""

    model_config = SettingsConfigDict(env_prefix="MAINMAST_AUTH_")

    listen: ListenAddress = "127.0.0.1:50051"
    """Where the gRPC server listens, HOST:PORT."""

    metrics_listen: OptionalListenAddress = "127.0.0.1:9151"
    """Where the Prometheus /metrics endpoint listens, HOST:PORT; empty turns it off."""

    database_url: SecretStr | None = None
    """The service's database: a postgresql:// URL, or empty for SQLite `auth.db` in the data
    folder."""

    signing_key_encryption_key: SecretStr | None = None
    """The key (32+ random bytes, base64) that seals private signing keys at rest."""

    signing_key_previous_encryption_keys: tuple[SecretStr, ...] = ()
    """Earlier encryption keys, still opening keys they sealed until those are re-sealed."""

    signing_key_encryption_key_file: Path | None = None
    """Where to keep a generated encryption key when `signing_key_encryption_key` is unset;
    empty for `auth-signing-key-encryption.key` in the data folder. Local runs only."""

    issuer: str = Field(default="mainmast-auth", min_length=1)
    """The `iss` of every access token, and what the service's own verifier expects."""

    audience: str = Field(default="mainmast", min_length=1)
    """The `aud` of every access token, and what the service's own verifier expects."""

    access_token_lifetime_seconds: int = Field(default=900, ge=30, le=86_400)
    """How long an access token lives."""

    signing_algorithm: Literal["EdDSA", "ES256", "RS256", "HS256"] = "EdDSA"
    """The JWS algorithm of access tokens. EdDSA, ES256 and RS256: of the generated signing
    keys (the first key, and rotations that name none), published in the JWKS. HS256: only
    with `signing_hmac_secret`, which then signs every token; it is never published, so
    clients verify through the service (IntrospectToken) or are given the secret
    (`VerificationKey.from_hmac_secret`), rotation is by configuration, and switching to
    or from HS256 invalidates the tokens signed before."""

    signing_hmac_secret: SecretStr | None = None
    """The HS256 secret (at least 32 bytes, from a secret store; never logged or stored):
    set exactly when `signing_algorithm` is HS256. Every replica needs the same one."""

    token_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    """Clock skew tolerated when verifying `exp`, `nbf` and `iat`."""

    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86_400)
    """How long clients may cache GetJwks, and how often a replica reloads the key ring."""

    login_max_failures: int = Field(default=5, ge=1, le=1000)
    """Failed logins of one name (a tenant's username, or a client id) within
    `login_window_seconds` that lock the name out."""

    login_address_max_failures: int = Field(default=20, ge=1, le=100_000)
    """Failed logins from one client address (across names) within `login_window_seconds`
    that lock the address out."""

    login_window_seconds: float = Field(default=900.0, gt=0, le=86_400)
    """How far back failed logins count; also how long a lockout history outlasts its
    lockout."""

    login_base_lockout_seconds: float = Field(default=60.0, gt=0, le=86_400)
    """The first lockout; each further failure while locked out doubles it."""

    login_max_lockout_seconds: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    """The longest lockout (at least `login_base_lockout_seconds`)."""

    trusted_proxy_hops: int = Field(default=0, ge=0, le=16)
    """How many proxies in front of the service append to `x-forwarded-for`: the client
    address throttled is the one the outermost of them saw. 0 ignores the header (which a
    client could forge) and throttles the gRPC peer address."""

    password_hash_memory_kib: int = Field(default=19_456, ge=7_168, le=4_194_304)
    """argon2id memory cost per password hash, in KiB. The default (19 MiB, with 2
    iterations and 1 lane) is OWASP's recommended minimum; RFC 9106's second option is
    65536 KiB, 3 iterations, 4 lanes (about 7x the CPU per login). Together with
    `password_hash_iterations` it must meet one of OWASP's equivalent minimums (46 MiB x 1,
    19 MiB x 2, 12 MiB x 3, 9 MiB x 4, 7 MiB x 5). A change rehashes each password at its
    next successful login."""

    password_hash_iterations: int = Field(default=2, ge=1, le=64)
    """argon2id time cost: passes over the memory per password hash."""

    password_hash_parallelism: int = Field(default=1, ge=1, le=64)
    """argon2id lanes per password hash; each lane can take a core of its own during a login."""

    bootstrap_admin_tenant: str | None = None
    """The tenant of the first platform admin (`acme` or `tenants/acme`), created at the first
    start that finds no platform admin; set with the username and password, or not at all."""

    bootstrap_admin_username: str | None = None
    """The user id of the first platform admin."""

    bootstrap_admin_password: SecretStr | None = None
    """The first platform admin's password (from a secret store; never logged)."""

    @field_validator(
        "bootstrap_admin_tenant",
        "bootstrap_admin_username",
        "bootstrap_admin_password",
        "signing_hmac_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An empty environment variable means "not set", as for the database URL.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @model_validator(mode="after")
    def _bootstrap_admin_complete(self) -> Self:
        given = [
            self.bootstrap_admin_tenant,
            self.bootstrap_admin_username,
            self.bootstrap_admin_password,
        ]
        if any(value is not None for value in given) and any(value is None for value in given):
            raise ValueError(
                "set MAINMAST_AUTH_BOOTSTRAP_ADMIN_TENANT, _USERNAME and _PASSWORD together"
            )
        return self

    @field_validator("signing_hmac_secret")
    @classmethod
    def _hmac_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_HMAC_SECRET_BYTES:
            raise ValueError(
                f"MAINMAST_AUTH_SIGNING_HMAC_SECRET must have at least {MIN_HMAC_SECRET_BYTES} "
                "bytes (RFC 7518 section 3.2)"
            )
        return value

    @model_validator(mode="after")
    def _hmac_secret_exactly_with_hs256(self) -> Self:
        if self.signing_algorithm == "HS256" and self.signing_hmac_secret is None:
            raise ValueError(
                "MAINMAST_AUTH_SIGNING_ALGORITHM=HS256 needs MAINMAST_AUTH_SIGNING_HMAC_SECRET"
            )
        if self.signing_algorithm != "HS256" and self.signing_hmac_secret is not None:
            raise ValueError(
                "MAINMAST_AUTH_SIGNING_HMAC_SECRET is set but MAINMAST_AUTH_SIGNING_ALGORITHM is "
                f"{self.signing_algorithm}; set it to HS256 to sign with the secret, or unset "
                "the secret"
            )
        return self

    @model_validator(mode="after")
    def _login_lockouts_ordered(self) -> Self:
        if self.login_max_lockout_seconds < self.login_base_lockout_seconds:
            raise ValueError(
                "MAINMAST_AUTH_LOGIN_MAX_LOCKOUT_SECONDS must be at least "
                "MAINMAST_AUTH_LOGIN_BASE_LOCKOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _password_hash_cost_enough(self) -> Self:
        memory, iterations = self.password_hash_memory_kib, self.password_hash_iterations
        if not any(
            memory >= least_memory and iterations >= least_iterations
            for least_memory, least_iterations in ARGON2ID_MINIMUMS
        ):
            raise ValueError(
                f"argon2id with {memory} KiB and {iterations} iterations is below OWASP's "
                "minimums; use at least one of "
                + ", ".join(f"{m} KiB x {t}" for m, t in ARGON2ID_MINIMUMS)
            )
        return self

    def login_limits(self) -> LoginLimits:
        """The failed-login limits these settings configure."""
        return LoginLimits(
            max_failures=self.login_max_failures,
            address_max_failures=self.login_address_max_failures,
            window=timedelta(seconds=self.login_window_seconds),
            base_lockout=timedelta(seconds=self.login_base_lockout_seconds),
            max_lockout=timedelta(seconds=self.login_max_lockout_seconds),
            trusted_proxy_hops=self.trusted_proxy_hops,
        )

    def password_hash_parameters(self) -> argon2.Parameters:
        """The argon2id parameters of new password hashes."""
        return argon2id_parameters(
            memory_kib=self.password_hash_memory_kib,
            iterations=self.password_hash_iterations,
            parallelism=self.password_hash_parallelism,
        )

    def database_target(self) -> str:
        """The database URL to open: `database_url`, else the default SQLite file."""
        if self.database_url is not None and self.database_url.get_secret_value().strip():
            return self.database_url.get_secret_value().strip()
        return default_sqlite_url(DEFAULT_SQLITE_NAME)

    def encryption_key_file(self) -> Path:
        """Where a generated encryption key is kept: the setting, else the data folder's file."""
        if self.signing_key_encryption_key_file is not None:
            return self.signing_key_encryption_key_file
        data_dir = os.environ.get(DATA_DIR_ENV) or "data"
        return Path(data_dir).absolute() / GENERATED_ENCRYPTION_KEY_FILE
