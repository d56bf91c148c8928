"""Lenient readers for the optional fields of providers' JSON answers."""

from __future__ import annotations


def count(value: object) -> int:
    """A token count: a non-negative int, else 0 (providers omit what they did not count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def text_or_empty(value: object) -> str:
    """`value` if it is a str, else ""."""
    return value if isinstance(value, str) else ""
