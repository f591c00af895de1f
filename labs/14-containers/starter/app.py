"""orders-api: the small service this lab packs into an image. You need not change it.

    GET /healthz   200 while the process can answer at all         (for liveness)
    GET /readyz    200 when PostgreSQL answers; 503 when it does not, and from the
                   moment SIGTERM arrives                           (for readiness)
    GET /          a JSON greeting

It listens on 0.0.0.0, port $PORT (8080 when PORT is not set), and reads DATABASE_URL.
On SIGTERM it stops looking ready, keeps serving for a few seconds while Kubernetes
takes it out of the Service's endpoints, then exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

PORT = int(os.environ.get("PORT", "8080"))
DRAIN_SECONDS = float(os.environ.get("DRAIN_SECONDS", "5"))
draining = threading.Event()


def database_answers() -> bool:
    """Whether PostgreSQL answers a trivial query within two seconds."""
    try:
        with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except (KeyError, psycopg.Error):
        return False
    return True


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self.reply(200, {"status": "alive"})
        elif path == "/readyz":
            ready = not draining.is_set() and database_answers()
            self.reply(200 if ready else 503, {"ready": ready})
        elif path == "/":
            self.reply(200, {"service": "orders-api"})
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)  # logs go to stdout


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)

    def on_sigterm(signum: int, frame: object) -> None:
        draining.set()  # /readyz says 503 from now on
        threading.Timer(DRAIN_SECONDS, server.shutdown).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"orders-api listening on :{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
