"""Customer lookups for the login page and the support desk."""

from __future__ import annotations

from typing import Any


def find_user(conn: Any, email: str) -> dict[str, Any] | None:
    """The customer with exactly this email, as {"id", "email", "name"}, or None.

    `conn` is a psycopg connection (autocommit). `email` is whatever the visitor typed.
    """
    row = conn.execute(f"SELECT id, email, name FROM customers WHERE email = '{email}'").fetchone()
    if row is None:
        return None
    return {"id": row[0], "email": row[1], "name": row[2]}
