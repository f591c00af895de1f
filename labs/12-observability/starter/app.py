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
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Summary, generate_latest

INVENTORY_URL = os.environ.get("INVENTORY_URL", "http://127.0.0.1:8081").rstrip("/")
ORDER_PATH = re.compile(r"^/orders/(\d+)$")

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["path"])
LATENCY = Summary("http_request_duration_seconds", "Time to answer an HTTP request")


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.perf_counter()
        body = self._json_body() if self.command == "POST" else {}
        path = self.path.split("?", 1)[0]
        status = 500
        try:
            status = self._dispatch(path, body)
        except Exception as exc:  # noqa: BLE001 - the service answers, and logs why
            log(f"ERROR {exc!r}")
            self._send(500, {"error": "internal error"})
        finally:
            elapsed = time.perf_counter() - started
            REQUESTS.labels(self.path).inc()
            LATENCY.observe(elapsed)
            # Everything, for debugging.
            log(
                f"{self.command} {self.path} -> {status} in {elapsed * 1000:.0f} ms "
                f"headers={dict(self.headers)} body={body}"
            )

    def _dispatch(self, path: str, body: dict[str, Any]) -> int:
        if self.command == "GET" and path == "/health":
            return self._send(200, "ok")
        if self.command == "GET" and path == "/metrics":
            return self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        if self.command == "GET" and ORDER_PATH.match(path):
            order = int(path.rsplit("/", 1)[1])
            status, stock = self._inventory("GET", f"/stock/{order}")
            if status == 200:
                return self._send(200, {"order": order, "in_stock": stock.get("in_stock")})
            return self._send(404 if status == 404 else 502, {"error": "inventory failed"})
        if self.command == "POST" and path == "/checkout":
            order = body.get("order_id")
            if not isinstance(order, int) or not body.get("card_number"):
                return self._send(400, {"error": "send order_id and card_number"})
            status, _ = self._inventory("POST", f"/reserve/{order}")
            if status == 200:
                return self._send(201, {"order": order, "paid": True})
            return self._send(502, {"error": "inventory failed"})
        return self._send(404, {"error": "not found"})

    def _inventory(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        """Call the inventory service."""
        request = urllib.request.Request(
            INVENTORY_URL + path, method=method, data=b"{}" if method == "POST" else None
        )
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (OSError, ValueError) as exc:
            log(f"inventory unreachable: {exc}")
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
        pass  # we print our own line per request


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    log(f"listening on http://127.0.0.1:{port}, inventory at {INVENTORY_URL}")
    Server(("127.0.0.1", port), Handler).serve_forever()
