"""A stand-in for the inventory service, to try app.py by hand (the checker runs its own).

Run it:  python inventory.py        (port 8081, or INVENTORY_PORT)
It prints the traceparent header of every call it gets, answers after 10 to 800 ms,
and fails about one call in twenty with 503.
"""

from __future__ import annotations

import json
import os
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Inventory(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        print(f"{self.command} {self.path} traceparent={self.headers.get('traceparent')}")
        time.sleep(random.choice([0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.4, 0.8]))
        status = 503 if random.random() < 0.05 else 200
        data = json.dumps({"in_stock": random.randint(0, 40)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    port = int(os.environ.get("INVENTORY_PORT", "8081"))
    print(f"inventory on http://127.0.0.1:{port}")
    ThreadingHTTPServer(("127.0.0.1", port), Inventory).serve_forever()
