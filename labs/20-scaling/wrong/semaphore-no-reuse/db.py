"""Connections to PostgreSQL: at most POOL_SIZE at once, but a fresh one each time."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
POOL_SIZE = 10

_slots = threading.BoundedSemaphore(POOL_SIZE)


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A connection for one request's queries; never more than POOL_SIZE at once."""
    with _slots:
        conn = psycopg.connect(DATABASE_URL, autocommit=True)
        try:
            yield conn
        finally:
            conn.close()
