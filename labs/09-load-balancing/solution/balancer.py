"""A small HTTP (L7) load balancer in front of a fleet of backends.

Run it:  PORT=8000 python balancer.py balancer.json
(sdtutor starts it the same way, with a config of its own and PORT set.)

The config (JSON) names the policy, the backends and the health checks:

    {"policy": "weighted_round_robin",        # or "least_connections"
     "backends": [{"name": "a", "url": "http://127.0.0.1:9001", "weight": 5}, ...],
     "health": {"path": "/health", "interval": 0.2, "timeout": 0.5, "fall": 2, "rise": 2},
     "hash_header": "X-User"}

A request that carries the hash_header (a user id) is sticky: it goes to the backend that
HashRing (ring.py), built from the backends' names in the config's order, gives for that
key. Every other request goes where the policy says.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ring import HashRing

IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
              "proxy-connection", "content-length"}  # fmt: skip


class Backend:
    """One server of the fleet, and what the balancer knows about it."""

    def __init__(self, spec: dict) -> None:
        self.name: str = spec["name"]
        parts = urlsplit(spec["url"])
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.weight = max(1, int(spec.get("weight", 1)))
        self.healthy = True
        self.active = 0  # requests in flight
        self.current = 0  # smooth weighted round robin's running score
        self.fails = 0  # failed health checks in a row
        self.passes = 0  # passed health checks in a row


class Pool:
    """The backends and the policy that picks one for each request."""

    def __init__(self, config: dict) -> None:
        self.backends = [Backend(spec) for spec in config["backends"]]
        self.by_name = {b.name: b for b in self.backends}
        self.policy = config.get("policy", "weighted_round_robin")
        self.ring = HashRing([b.name for b in self.backends])
        self.lock = threading.Lock()

    def pick(self, key: str | None = None, exclude: tuple[Backend, ...] = ()) -> Backend | None:
        """The backend for the next request (and count it in flight); None if none is left."""
        with self.lock:
            left = [b for b in self.backends if b not in exclude]
            # Fail open: if every backend looks down, a health check is more likely wrong
            # than the whole fleet; keep serving rather than answer 503 to everyone.
            candidates = [b for b in left if b.healthy] or left
            if not candidates:
                return None
            if key is not None:  # sticky: the ring decides
                chosen = self.by_name[self.ring.node_for(key)]
                if chosen not in candidates:  # tried already (a retry), or out of rotation
                    chosen = self._smooth(candidates)
            elif self.policy == "least_connections":
                chosen = min(candidates, key=lambda b: b.active / b.weight)
            else:
                chosen = self._smooth(candidates)
            chosen.active += 1
            return chosen

    def _smooth(self, candidates: list[Backend]) -> Backend:
        """Smooth weighted round robin (as in NGINX): interleaved, not in bursts."""
        total = 0
        for b in candidates:
            b.current += b.weight
            total += b.weight
        chosen = max(candidates, key=lambda b: b.current)
        chosen.current -= total
        return chosen

    def done(self, backend: Backend) -> None:
        """A request to `backend` has ended, however it ended."""
        with self.lock:
            backend.active -= 1

    def health_result(self, backend: Backend, ok: bool, fall: int, rise: int) -> None:
        """Count a health check: out after `fall` failures in a row, back after `rise` passes."""
        with self.lock:
            if ok:
                backend.passes, backend.fails = backend.passes + 1, 0
                if not backend.healthy and backend.passes >= rise:
                    backend.healthy = True
                    self.ring.add(backend.name)
            else:
                backend.fails, backend.passes = backend.fails + 1, 0
                if backend.healthy and backend.fails >= fall:
                    backend.healthy = False
                    self.ring.remove(backend.name)


def health_loop(pool: Pool, health: dict) -> None:
    """Check every backend, up or down, every `interval` seconds."""
    path = health.get("path", "/health")
    interval = float(health.get("interval", 1.0))
    timeout = float(health.get("timeout", 1.0))
    fall, rise = int(health.get("fall", 2)), int(health.get("rise", 2))
    while True:
        started = time.monotonic()
        for backend in pool.backends:
            conn = http.client.HTTPConnection(backend.host, backend.port, timeout=timeout)
            try:
                conn.request("GET", path)
                ok = conn.getresponse().status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            pool.health_result(backend, ok, fall, rise)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


class NotSent(Exception):
    """The request never reached the backend (it refused the connection)."""


def forward(backend: Backend, method: str, path: str, headers: dict, body: bytes):
    """Send one request to `backend`; returns (status, headers, body)."""
    conn = http.client.HTTPConnection(backend.host, backend.port, timeout=10)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError as exc:
            raise NotSent(str(exc)) from exc
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    pool: Pool
    hash_header: str = "X-User"

    def do_GET(self) -> None:
        self.proxy()

    def do_POST(self) -> None:
        self.proxy()

    def proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = self.client_address[0]
        key = self.headers.get(self.hash_header)
        tried: tuple[Backend, ...] = ()
        while True:
            backend = self.pool.pick(key, exclude=tried)
            if backend is None:
                self.reply(502, [], b'{"error": "no backend answered"}')
                return
            tried += (backend,)
            try:
                status, reply_headers, data = forward(backend, self.command, self.path, headers, body)
            except NotSent:
                continue  # nothing reached it: safe to try another, whatever the method
            except (OSError, http.client.HTTPException):
                if self.command in IDEMPOTENT:
                    continue  # it may have run: only a request that is safe twice goes again
                self.reply(502, [], b'{"error": "the backend failed"}')
                return
            finally:
                self.pool.done(backend)
            self.reply(status, reply_headers, data)
            return

    def reply(self, status: int, headers: list, data: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() not in ("server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would drown the output


def main() -> None:
    with open(sys.argv[1] if len(sys.argv) > 1 else "balancer.json") as f:
        config = json.load(f)
    pool = Pool(config)
    Handler.pool = pool
    Handler.hash_header = config.get("hash_header", "X-User")
    threading.Thread(target=health_loop, args=(pool, config.get("health", {})), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler)
    server.daemon_threads = True
    print(f"balancing {len(pool.backends)} backends on port {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
