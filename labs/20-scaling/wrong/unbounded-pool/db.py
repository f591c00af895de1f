"""Connections to PostgreSQL: idle ones are reused, and a new one is opened when none is idle."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
POOL_SIZE = 10

_idle: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()


@contextmanager
def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection for one request's queries."""
    try:
        conn = _idle.get_nowait()
    except queue.Empty:
        conn = psycopg.connect(DATABASE_URL, autocommit=True)
    try:
        yield conn
    finally:
        _idle.put(conn)
