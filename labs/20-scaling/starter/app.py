"""A small web shop: a login, and a home page with the catalogue and who you are.

Run it:  PORT=8000 python app.py   (sdtutor starts it with DATABASE_URL, REDIS_URL,
REDIS_KEY_PREFIX and PORT set; `sdtutor lab info scaling` shows the URLs.)

    GET  /health              200 "ok"
    POST /login  {"user": "ada"}  -> {"token": ...} and a `session` cookie
    GET  /home                -> {"user": "ada" or null, "items": [...], "degraded": false}
"""

from __future__ import annotations

import json
import os
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import db
import sessions


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, "ok")
        elif self.path == "/home":
            self._home()
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path == "/login":
            self._login()
        else:
            self._send(404, {"error": "not found"})

    def _home(self) -> None:
        with db.connection() as conn:
            rows = conn.execute("SELECT id, name, price FROM items ORDER BY id LIMIT 5").fetchall()
        items = [{"id": i, "name": n, "price": str(p)} for i, n, p in rows]
        token = self._cookie("session")
        user = sessions.lookup(token) if token else None
        self._send(200, {"user": user, "items": items, "degraded": False})

    def _login(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            user = json.loads(self.rfile.read(length) or b"{}").get("user")
        except (ValueError, AttributeError):
            user = None
        if not isinstance(user, str):
            self._send(400, {"error": 'send {"user": "ada"}'})
            return
        with db.connection() as conn:
            known = conn.execute("SELECT 1 FROM users WHERE name = %s", (user,)).fetchone()
        if known is None:
            self._send(404, {"error": "no such user"})
            return
        try:
            token = sessions.create(user)
        except sessions.Unavailable:
            self._send(503, {"error": "cannot log in right now, try again soon"})
            return
        self._send(200, {"token": token}, cookie=token)

    def _cookie(self, name: str) -> str | None:
        jar = SimpleCookie(self.headers.get("Cookie") or "")
        return jar[name].value if name in jar else None

    def _send(self, status: int, body: Any, cookie: str | None = None) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if cookie:
            self.send_header("Set-Cookie", f"session={cookie}; HttpOnly; Path=/")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the logs


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    Server(("127.0.0.1", port), Handler).serve_forever()
