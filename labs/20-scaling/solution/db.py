"""Connections to PostgreSQL for the web app: a pool of at most POOL_SIZE.

A request borrows a connection and gives it back; when all are busy it waits for one,
so 200 requests at once still hold at most POOL_SIZE connections to PostgreSQL.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
POOL_SIZE = 10
"""The most connections this process may hold open to PostgreSQL at once."""

_idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
_slots = threading.BoundedSemaphore(POOL_SIZE)  # one per connection that may exist


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection for one request's queries (autocommit)."""
    if not _slots.acquire(timeout=10):
        raise TimeoutError("no database connection free for 10 s")
    conn = None
    try:
        try:
            conn = _idle.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(DATABASE_URL, autocommit=True)
        if conn.closed:
            conn = psycopg.connect(DATABASE_URL, autocommit=True)
        yield conn
    except BaseException:
        if conn is not None:
            conn.close()  # it may be broken; the next borrower opens a fresh one
            conn = None
        raise
    finally:
        if conn is not None:
            _idle.put(conn)
        _slots.release()
