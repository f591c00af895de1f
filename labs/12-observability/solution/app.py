"""The order API: looks orders up in the inventory service, takes payments at checkout.

Run it:  PORT=8000 INVENTORY_URL=http://127.0.0.1:8081 python app.py
(`python inventory.py` runs a stand-in inventory service on port 8081.)

    GET  /health                 200 "ok"
    GET  /metrics                Prometheus text format
    GET  /orders/{id}            -> inventory GET /stock/{id}     -> 200 {"order": id, ...}
    POST /checkout {"order_id": id, "card_number": ..., "password": ...}
                                 -> inventory POST /reserve/{id}  -> 201 {"order": id, ...}
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

SERVICE = "orders"
INVENTORY_URL = os.environ.get("INVENTORY_URL", "http://127.0.0.1:8081").rstrip("/")
ORDER_PATH = re.compile(r"^/orders/(\d+)$")
TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    # Fine where the traffic is, and one edge exactly at the SLO's 300 ms.
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0),
)


def log(level: str, message: str, **fields: Any) -> None:
    """One JSON object per line on stdout: easy to search, easy to join on trace_id."""
    line = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "service": SERVICE,
        "message": message,
        **fields,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def incoming_trace(header: str | None) -> tuple[str, str | None]:
    """(trace id, caller's span id) from a W3C traceparent; a new trace if it is not valid."""
    match = TRACEPARENT.match((header or "").strip())
    if match:
        version, trace_id, parent, _flags = match.groups()
        if version != "ff" and trace_id != "0" * 32 and parent != "0" * 16:
            return trace_id, parent
    return secrets.token_hex(16), None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.perf_counter()
        self.trace_id, self.parent_id = incoming_trace(self.headers.get("traceparent"))
        self.span_id = secrets.token_hex(8)
        path = self.path.split("?", 1)[0]  # a query string may hold a token: never log it
        route, status = self._route(path), 500
        try:
            status = self._dispatch(route, path)
        except Exception as exc:  # noqa: BLE001 - the service answers, and logs why
            log("error", "unhandled error", trace_id=self.trace_id, error=repr(exc))
            self._send(500, {"error": "internal error"})
        finally:
            elapsed = time.perf_counter() - started
            if route != "/metrics":
                REQUESTS.labels(self.command, route, str(status)).inc()
                DURATION.labels(self.command, route).observe(elapsed)
            log(
                "error" if status >= 500 else "info",
                f"{self.command} {route} {status}",
                trace_id=self.trace_id,
                span_id=self.span_id,
                method=self.command,
                route=route,
                path=path,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )

    @staticmethod
    def _route(path: str) -> str:
        """The route template: one value per route, however many orders there are."""
        if path in ("/health", "/metrics", "/checkout"):
            return path
        if ORDER_PATH.match(path):
            return "/orders/{id}"
        return "other"

    def _dispatch(self, route: str, path: str) -> int:
        if self.command == "GET" and route == "/health":
            return self._send(200, "ok")
        if self.command == "GET" and route == "/metrics":
            return self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        if self.command == "GET" and route == "/orders/{id}":
            order = int(path.rsplit("/", 1)[1])
            status, stock = self._inventory("GET", f"/stock/{order}")
            if status == 200:
                return self._send(200, {"order": order, "in_stock": stock.get("in_stock")})
            return self._send(404 if status == 404 else 502, {"error": "inventory failed"})
        if self.command == "POST" and route == "/checkout":
            body = self._json_body()
            order = body.get("order_id")
            if not isinstance(order, int) or not body.get("card_number"):
                return self._send(400, {"error": "send order_id and card_number"})
            status, _ = self._inventory("POST", f"/reserve/{order}")
            if status == 200:
                return self._send(201, {"order": order, "paid": True})
            return self._send(502, {"error": "inventory failed"})
        return self._send(404, {"error": "not found"})

    def _inventory(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        """Call the inventory service in this trace: same trace id, our span as parent."""
        request = urllib.request.Request(
            INVENTORY_URL + path,
            method=method,
            data=b"{}" if method == "POST" else None,
            headers={"traceparent": f"00-{self.trace_id}-{self.span_id}-01"},
        )
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (OSError, ValueError) as exc:
            log("warn", "inventory unreachable", trace_id=self.trace_id, error=str(exc))
            return 599, {}

    def _json_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> int:
        if isinstance(body, bytes):
            data = body
        else:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def log_message(self, format: str, *args: Any) -> None:
        pass  # our own JSON line per request replaces http.server's plain-text one


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    log("info", "listening", port=port, inventory=INVENTORY_URL)
    Server(("127.0.0.1", port), Handler).serve_forever()
