"""Validating the body of POST /signup before anything is stored."""

from __future__ import annotations

import re
import unicodedata
from typing import Any


class Invalid(ValueError):
    """The body is not a signup we accept; the API answers 422 with this message."""


FIELDS = ("email", "name", "age", "password")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _text(data: dict[str, Any], field: str, low: int, high: int) -> str:
    value = data[field]
    if type(value) is not str:
        raise Invalid(f"{field} must be a string")
    if not low <= len(value) <= high:
        raise Invalid(f"{field} must be {low} to {high} characters long")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise Invalid(f"{field} must not hold control characters")
    return value


def validate_signup(data: Any) -> dict[str, Any]:
    """Check a parsed JSON body; return the fields to store, or raise Invalid.

    The rules are in README.md ("Task 4").
    """
    if type(data) is not dict:
        raise Invalid("the body must be a JSON object")
    missing = [f for f in FIELDS if f not in data]
    if missing:
        raise Invalid(f"missing: {', '.join(missing)}")
    email = _text(data, "email", 3, 254)
    if not EMAIL.fullmatch(email):
        raise Invalid("email must look like name@example.com")
    name = _text(data, "name", 1, 100)
    if not name.strip():
        raise Invalid("name must not be blank")
    age = data["age"]
    if type(age) is not int or not 13 <= age <= 150:  # type(): True is an int too
        raise Invalid("age must be a whole number from 13 to 150")
    password = _text(data, "password", 12, 128)
    return {"email": email, "name": name, "age": age, "password": password}
