"""Connections to PostgreSQL: one per thread, kept for the thread's next request."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
POOL_SIZE = 10

_local = threading.local()


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """This thread's connection."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(DATABASE_URL, autocommit=True)
    yield conn
