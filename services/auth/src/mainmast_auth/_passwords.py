"""Password hashing (argon2id) and password rules.

`PasswordHasher.verify(None, password)` is the unknown-user path: it verifies against a
hash of a random password made at construction with the same parameters, so a login for
a user that does not exist costs what a wrong password costs, and timing tells nothing.

Passwords are NFC-normalised before hashing (RFC 8265's OpaqueString profile), so the
same password typed on two keyboards that compose accents differently still matches.

The rules follow NIST SP 800-63B: a minimum length, a generous maximum, and no
composition rules; plus two checks for the cheapest guesses (the username inside the
password, and too few distinct characters, such as "aaaaaaaaaaaa" or "abababababab").
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Final

import argon2
import argon2.low_level
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mainmast.auth import AUTH_ERROR_DOMAIN, AuthErrorReason
from mainmast.errors import FieldViolation, ValidationError
from mainmast.logging import get_logger

ARGON2ID_MINIMUMS: Final = ((47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5))
"""OWASP's equivalent argon2id minimums as (memory KiB, iterations), each with 1 lane."""


def argon2id_parameters(*, memory_kib: int, iterations: int, parallelism: int) -> argon2.Parameters:
    """argon2id parameters with these costs, a 16-byte salt and a 32-byte hash (RFC 9106)."""
    return argon2.Parameters(
        type=argon2.Type.ID,
        version=argon2.low_level.ARGON2_VERSION,
        salt_len=16,
        hash_len=32,
        time_cost=iterations,
        memory_cost=memory_kib,
        parallelism=parallelism,
    )


DEFAULT_PARAMETERS: Final = argon2id_parameters(memory_kib=19_456, iterations=2, parallelism=1)
"""argon2id, 19 MiB, 2 passes, 1 lane: OWASP's recommended minimum, and the settings' default.

RFC 9106's second option (64 MiB, 3 passes, 4 lanes, `argon2.profiles.RFC_9106_LOW_MEMORY`)
costs about seven times the CPU per login, and its four lanes occupy every core of a small
replica while it runs, which stalls the token checks of every other call there; the
settings (`password_hash_*`) choose it, or anything at least as strong as OWASP's minimums.
"""


def normalised_password(password: str) -> str:
    """The form a password is hashed and checked in (Unicode NFC)."""
    return unicodedata.normalize("NFC", password)


class PasswordHasher:
    """argon2id hashing with a constant-cost path for unknown users.

    Hashing and verifying take about a tenth of a second of CPU by design: call the
    `_async` variants from a running event loop, they run in a worker thread.
    """

    __slots__ = ("_dummy_hash", "_hasher")

    def __init__(self, parameters: argon2.Parameters = DEFAULT_PARAMETERS) -> None:
        if parameters.type is not argon2.Type.ID:
            raise ValueError("passwords are hashed with argon2id")
        self._hasher = argon2.PasswordHasher.from_parameters(parameters)
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        """The argon2id hash of `password`, in PHC string format."""
        return self._hasher.hash(normalised_password(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches `password_hash`; None means "no such user" (always False).

        Every path costs one argon2id verification with this hasher's parameters.
        """
        candidate = normalised_password(password)
        if password_hash is None:
            self._verify_against_dummy(candidate)
            return False
        try:
            return self._hasher.verify(password_hash, candidate)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            # A stored hash argon2 cannot read: deny, at the usual cost, and tell the
            # operator (without the hash, which would help an offline attack).
            get_logger(__name__).warning("auth.password_hash_unreadable")
            self._verify_against_dummy(candidate)
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether `password_hash` was made with other parameters (rehash at next login)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def hash_async(self, password: str) -> str:
        """`hash` in a worker thread."""
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        """`verify` in a worker thread."""
        return await asyncio.to_thread(self.verify, password_hash, password)

    def _verify_against_dummy(self, candidate: str) -> None:
        try:
            self._hasher.verify(self._dummy_hash, candidate)
        except VerificationError:
            return


@dataclass(frozen=True, slots=True)
class PasswordRuleViolation:
    """One broken password rule; never contains the password."""

    rule: str
    """A stable name of the rule, e.g. `min_length`."""
    description: str
    """What the rule asks for, in a sentence for the user."""


@dataclass(frozen=True, slots=True)
class PasswordRules:
    """The rules a new password must satisfy."""

    min_length: int = 12
    """Fewest characters (after NFC normalisation)."""
    max_length: int = 256
    """Most characters: long passphrases are welcome, megabytes are not."""
    min_distinct_characters: int = 5
    """Fewest different characters."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError("password rules need 1 <= min_length <= max_length")
        if self.min_distinct_characters > self.min_length:
            raise ValueError("min_distinct_characters cannot exceed min_length")

    def violations(
        self, password: str, *, username: str | None = None
    ) -> list[PasswordRuleViolation]:
        """Every rule `password` breaks, in a fixed order; empty when it is acceptable."""
        candidate = normalised_password(password)
        found = []
        if len(candidate) < self.min_length:
            found.append(
                PasswordRuleViolation(
                    "min_length", f"A password has at least {self.min_length} characters."
                )
            )
        if len(candidate) > self.max_length:
            found.append(
                PasswordRuleViolation(
                    "max_length", f"A password has at most {self.max_length} characters."
                )
            )
        if len(set(candidate)) < self.min_distinct_characters:
            found.append(
                PasswordRuleViolation(
                    "min_distinct_characters",
                    f"A password has at least {self.min_distinct_characters} different characters.",
                )
            )
        if any(unicodedata.category(character) == "Cc" for character in candidate):
            found.append(
                PasswordRuleViolation(
                    "no_control_characters", "A password has no control characters."
                )
            )
        if username and len(username) >= 3 and username.casefold() in candidate.casefold():
            found.append(
                PasswordRuleViolation("no_username", "A password does not contain the username.")
            )
        return found

    def check(self, password: str, *, username: str | None = None, field: str = "password") -> None:
        """Raise ValidationError(PASSWORD_POLICY_VIOLATION) naming each broken rule."""
        found = self.violations(password, username=username)
        if not found:
            return
        raise ValidationError(
            "The password does not satisfy the password rules: "
            + " ".join(violation.description for violation in found),
            reason=AuthErrorReason.PASSWORD_POLICY_VIOLATION.value,
            domain=AUTH_ERROR_DOMAIN,
            metadata={"field": field, "rules": ",".join(violation.rule for violation in found)},
            field_violations=[
                FieldViolation(field, violation.description, reason=violation.rule.upper())
                for violation in found
            ],
        )
