"""The orders API. It answers, but clients cannot trust it yet (see README.md).

Run it:  PORT=8000 python app.py   (sdtutor starts it with DATABASE_URL and PORT set;
`sdtutor lab info api-design` shows the database URL.)

    GET  /health                      200 "ok"
    GET  /orders?limit=&page=         a page of orders, newest first, and a `next` link
    POST /orders  {"customer_id": 3, "total": "19.90"}   the new order
    GET  /orders/{id}                 one order
    POST /orders/{id}/cancel          the order, now cancelled
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.rows import dict_row

DATABASE_URL = os.environ["DATABASE_URL"]
DEFAULT_LIMIT = 20

# ------------------------------------------------------------------ a small pool

POOL_SIZE = 10
_idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
_slots = threading.BoundedSemaphore(POOL_SIZE)


@contextmanager
def db() -> Iterator[psycopg.Connection]:
    """A pooled autocommit connection for one request."""
    if not _slots.acquire(timeout=10):
        raise TimeoutError("no database connection free for 10 s")
    conn = None
    try:
        try:
            conn = _idle.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(DATABASE_URL, autocommit=True)
        yield conn
    except BaseException:
        if conn is not None:
            conn.close()  # it may be broken; the next request opens a fresh one
            conn = None
        raise
    finally:
        if conn is not None:
            _idle.put(conn)
        _slots.release()


# ------------------------------------------------------------------ representations


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def represent(conn: psycopg.Connection, order: dict[str, Any]) -> dict[str, Any]:
    """An order with its customer."""
    with conn.cursor(row_factory=dict_row) as cur:
        customer = cur.execute(
            "SELECT * FROM customers WHERE id = %s", (order["customer_id"],)
        ).fetchone()
    item = {k: json_value(v) for k, v in order.items()}
    item["customer"] = customer
    return item


# ------------------------------------------------------------------ the handlers


def list_orders(query: dict[str, str]) -> tuple[int, Any]:
    limit = int(query.get("limit", DEFAULT_LIMIT))
    page = int(query.get("page", 1))
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM orders ORDER BY created_at DESC LIMIT %s OFFSET %s",
            (limit, (page - 1) * limit),
        ).fetchall()
        items = [represent(conn, row) for row in rows]
    next_link = f"/orders?limit={limit}&page={page + 1}" if len(rows) == limit else None
    return 200, {"items": items, "next": next_link}


def get_order(order_id: int, query: dict[str, str]) -> tuple[int, Any]:
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM orders WHERE id = %s", (order_id,)).fetchone()
        if row is None:
            return 404, "order not found"
        return 200, represent(conn, row)


def create_order(data: Any) -> tuple[int, Any]:
    try:
        customer_id, total = int(data["customer_id"]), Decimal(data["total"])
    except Exception:
        return 400, "bad request"
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO orders (customer_id, total) VALUES (%s, %s) RETURNING *",
            (customer_id, total),
        ).fetchone()
    return 200, {k: json_value(v) for k, v in row.items()}


def cancel_order(order_id: int) -> tuple[int, Any]:
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE orders SET status = 'cancelled' WHERE id = %s RETURNING *", (order_id,)
        ).fetchone()
    if row is None:
        return 404, "order not found"
    return 200, {k: json_value(v) for k, v in row.items()}


# ------------------------------------------------------------------ HTTP

ORDER_PATH = re.compile(r"/orders/(\d+)")
CANCEL_PATH = re.compile(r"/orders/(\d+)/cancel")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/health":
            self._send(200, "ok")
        elif url.path == "/orders":
            self._send(*list_orders(query))
        elif match := ORDER_PATH.fullmatch(url.path):
            self._send(*get_order(int(match[1]), query))
        else:
            self._send(404, "not found")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if path == "/orders":
            try:
                data = json.loads(raw)
            except ValueError:
                self._send(400, "bad request")
                return
            self._send(*create_order(data))
        elif match := CANCEL_PATH.fullmatch(path):
            self._send(*cancel_order(int(match[1])))
        else:
            self._send(404, "not found")

    def _send(self, status: int, body: Any) -> None:
        if isinstance(body, str):
            data, content_type = body.encode(), "text/plain"
        else:
            data, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the logs


class Server(ThreadingHTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    Server(("127.0.0.1", port), Handler).serve_forever()
