"""Validating the body of POST /signup before anything is stored."""

from __future__ import annotations

from typing import Any


class Invalid(ValueError):
    """The body is not a signup we accept; the API answers 422 with this message."""


def validate_signup(data: Any) -> dict[str, Any]:
    """Check a parsed JSON body; return the fields to store, or raise Invalid.

    The rules are in README.md ("Task 4").
    """
    if "email" not in data or "password" not in data:
        raise Invalid("email and password are required")
    return data
