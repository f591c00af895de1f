"""The orders API: an HTTP service that clients can trust.

Run it:  PORT=8000 python app.py   (sdtutor starts it with DATABASE_URL and PORT set;
`sdtutor lab info api-design` shows the database URL.)

    GET  /health                      200 "ok"
    GET  /orders?limit=&cursor=&fields=   a page of orders, newest first, and a `next` link
    POST /orders  {"customer_id": 3, "total": "19.90"}   201, Location: /orders/{id}
    GET  /orders/{id}?fields=         one order
    POST /orders/{id}/cancel          the order, now cancelled (409 once it has shipped)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg
from psycopg.rows import dict_row

DATABASE_URL = os.environ["DATABASE_URL"]
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
ORDER_FIELDS = ("id", "customer_id", "status", "total", "created_at")
CUSTOMER_FIELDS = ("id", "name", "email")  # never password_hash
DEFAULT_FIELDS = [*ORDER_FIELDS, *(f"customer.{f}" for f in CUSTOMER_FIELDS)]

# ------------------------------------------------------------------ errors


class Problem(Exception):
    """An error answered as RFC 9457 problem details."""

    def __init__(self, status: int, title: str, detail: str, kind: str = "about:blank") -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.kind = status, title, detail, kind

    def body(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


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
    except Problem:
        raise  # an answer, not a broken connection (a transaction has rolled back)
    except BaseException:
        if conn is not None:
            conn.close()  # it may be broken; the next request opens a fresh one
            conn = None
        raise
    finally:
        if conn is not None:
            _idle.put(conn)
        _slots.release()


def create_schema() -> None:
    """The table that remembers each idempotency key and the answer it got."""
    with db() as conn:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS idempotency_keys (
                   key          text PRIMARY KEY,
                   request_hash text NOT NULL,
                   status       integer,
                   body         jsonb,
                   location     text,
                   created_at   timestamptz NOT NULL DEFAULT now())"""
        )


# ------------------------------------------------------------------ representations


def parse_fields(raw: str | None) -> list[str]:
    """The fields asked for: order fields and customer.<field>; anything else is a 422."""
    if not raw:
        return DEFAULT_FIELDS
    fields: list[str] = []
    for name in (f.strip() for f in raw.split(",")):
        if name == "customer":
            fields += [f"customer.{f}" for f in CUSTOMER_FIELDS]
        elif name in ORDER_FIELDS or (
            name.startswith("customer.") and name.removeprefix("customer.") in CUSTOMER_FIELDS
        ):
            fields.append(name)
        else:
            raise Problem(
                422, "Unknown field", f"'{name}' is not a field of an order", "/problems/fields"
            )
    return fields


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def represent(conn: psycopg.Connection, rows: list[dict[str, Any]], fields: list[str]) -> list:
    """Orders with exactly `fields`; customers for all of them in one statement."""
    wanted = [f.removeprefix("customer.") for f in fields if f.startswith("customer.")]
    customers: dict[int, dict[str, Any]] = {}
    if wanted and rows:
        ids = sorted({r["customer_id"] for r in rows})
        columns = ", ".join(dict.fromkeys(["id", *wanted]))  # names from CUSTOMER_FIELDS only
        with conn.cursor(row_factory=dict_row) as cur:
            for c in cur.execute(f"SELECT {columns} FROM customers WHERE id = ANY(%s)", (ids,)):
                customers[c["id"]] = c
    out = []
    for row in rows:
        item = {f: json_value(row[f]) for f in fields if f in ORDER_FIELDS}
        if wanted:
            customer = customers.get(row["customer_id"], {})
            item["customer"] = {f: customer.get(f) for f in wanted}
        out.append(item)
    return out


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        created_at, order_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), int(order_id)
    except (ValueError, TypeError) as exc:
        raise Problem(422, "Bad cursor", "cursor is not one this API gave out") from exc


# ------------------------------------------------------------------ the handlers

SELECT_ORDER = "SELECT id, customer_id, status, total, created_at FROM orders"


def list_orders(query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    fields = parse_fields(query.get("fields"))
    try:
        limit = min(max(int(query.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
    except ValueError as exc:
        raise Problem(422, "Bad limit", "limit must be a whole number") from exc
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        if query.get("cursor"):
            after = decode_cursor(query["cursor"])
            cur.execute(
                f"{SELECT_ORDER} WHERE (created_at, id) < (%s, %s)"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (*after, limit + 1),
            )
        else:
            cur.execute(f"{SELECT_ORDER} ORDER BY created_at DESC, id DESC LIMIT %s", (limit + 1,))
        rows = cur.fetchall()
        page, more = rows[:limit], len(rows) > limit
        items = represent(conn, page, fields)
    next_link = None
    if more:
        params = {"limit": limit, "cursor": encode_cursor(page[-1])}
        if query.get("fields"):
            params["fields"] = query["fields"]
        next_link = "/orders?" + urlencode(params)
    return 200, {"items": items, "next": next_link}


def get_order(order_id: int, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    fields = parse_fields(query.get("fields"))
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"{SELECT_ORDER} WHERE id = %s", (order_id,)).fetchone()
        if row is None:
            raise Problem(404, "No such order", f"there is no order {order_id}")
        return 200, represent(conn, [row], fields)[0]


def validate(data: Any) -> tuple[int, Decimal]:
    if not isinstance(data, dict):
        raise Problem(422, "Invalid order", "send a JSON object", "/problems/invalid-order")
    customer_id, total = data.get("customer_id"), data.get("total")
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        raise Problem(
            422, "Invalid order", "customer_id must be a whole number", "/problems/invalid-order"
        )
    try:
        amount = Decimal(str(total)) if isinstance(total, str | int | float) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or amount >= 10**8:
        raise Problem(
            422,
            "Invalid order",
            'total must be a non-negative amount, like "19.90"',
            "/problems/invalid-order",
        )
    return customer_id, amount.quantize(Decimal("0.01"))


def create_order(data: Any, key: str | None) -> tuple[int, dict[str, Any], str]:
    """Create an order; with an idempotency key, exactly once whatever the retries."""
    customer_id, total = validate(data)
    request_hash = hashlib.sha256(
        json.dumps({"customer_id": customer_id, "total": str(total)}).encode()
    ).hexdigest()
    with db() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if key is not None:
            # Claim the key. A concurrent request with the same key waits here on the
            # primary key until this transaction ends, then finds the stored answer.
            claimed = cur.execute(
                "INSERT INTO idempotency_keys (key, request_hash) VALUES (%s, %s)"
                " ON CONFLICT (key) DO NOTHING RETURNING key",
                (key, request_hash),
            ).fetchone()
            if claimed is None:
                seen = cur.execute(
                    "SELECT request_hash, status, body, location FROM idempotency_keys"
                    " WHERE key = %s",
                    (key,),
                ).fetchone()
                if seen["request_hash"] != request_hash:
                    raise Problem(
                        409,
                        "Idempotency key reused",
                        "this Idempotency-Key was first sent with a different body",
                        "/problems/idempotency-key-reused",
                    )
                return seen["status"], seen["body"], seen["location"]
        known = cur.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone()
        if known is None:
            raise Problem(
                422,
                "Invalid order",
                f"there is no customer {customer_id}",
                "/problems/invalid-order",
            )
        row = cur.execute(
            "INSERT INTO orders (customer_id, total) VALUES (%s, %s)"
            " RETURNING id, customer_id, status, total, created_at",
            (customer_id, total),
        ).fetchone()
        body = {f: json_value(row[f]) for f in ORDER_FIELDS}
        location = f"/orders/{row['id']}"
        if key is not None:
            cur.execute(
                "UPDATE idempotency_keys SET status = 201, body = %s, location = %s WHERE key = %s",
                (json.dumps(body), location, key),
            )
    return 201, body, location


def cancel_order(order_id: int) -> tuple[int, dict[str, Any]]:
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "UPDATE orders SET status = 'cancelled' WHERE id = %s AND status <> 'shipped'"
            " RETURNING id, customer_id, status, total, created_at",
            (order_id,),
        ).fetchone()
        if row is not None:
            return 200, {f: json_value(row[f]) for f in ORDER_FIELDS}
        if cur.execute("SELECT 1 FROM orders WHERE id = %s", (order_id,)).fetchone() is None:
            raise Problem(404, "No such order", f"there is no order {order_id}")
        raise Problem(
            409,
            "Order already shipped",
            f"order {order_id} has shipped and can no longer be cancelled",
            "/problems/already-shipped",
        )


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
            self._answer(lambda: list_orders(query))
        elif match := ORDER_PATH.fullmatch(url.path):
            self._answer(lambda: get_order(int(match[1]), query))
        else:
            self._problem(Problem(404, "Not found", f"nothing at {url.path}"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if path == "/orders":
            try:
                data = json.loads(raw or b"null")
            except ValueError:
                self._problem(Problem(400, "Malformed JSON", "the body is not valid JSON"))
                return
            try:
                status, body, location = create_order(data, self.headers.get("Idempotency-Key"))
            except Problem as problem:
                self._problem(problem)
                return
            self._send(status, body, location=location)
        elif match := CANCEL_PATH.fullmatch(path):
            self._answer(lambda: cancel_order(int(match[1])))
        else:
            self._problem(Problem(404, "Not found", f"nothing at {path}"))

    def _answer(self, handler: Any) -> None:
        try:
            status, body = handler()
        except Problem as problem:
            self._problem(problem)
            return
        self._send(status, body)

    def _problem(self, problem: Problem) -> None:
        self._send(400, problem.detail, content_type="text/plain")

    def _send(
        self,
        status: int,
        body: Any,
        location: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the logs


class Server(ThreadingHTTPServer):
    daemon_threads = True


if __name__ == "__main__":
    create_schema()
    port = int(os.environ.get("PORT", "8000"))
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    Server(("127.0.0.1", port), Handler).serve_forever()
