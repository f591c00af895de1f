"""Connections to PostgreSQL for the web app.

Every request calls `connection()` and uses what it yields for one or two queries.
Right now each call opens a brand-new connection and closes it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
POOL_SIZE = 10
"""The most connections this process may hold open to PostgreSQL at once."""


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A connection for one request's queries (autocommit)."""
    conn = psycopg.connect(DATABASE_URL, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()
