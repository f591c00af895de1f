"""Three toy backends to try your balancer by hand: a, b, c on ports 9001-9003.

    python fleet.py                  # leave it running
    PORT=8000 python balancer.py balancer.json
    curl -s localhost:8000/hello     # {"backend": "a", ...}
    touch down-b                     # b now fails GET /health; rm down-b to heal it

Each answers {"backend": NAME, "served": N} and prints what it received. The checker
runs its own fleet, which can also be slow, answer 500 or refuse connections.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def backend(name: str, port: int) -> None:
    served = 0

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            nonlocal served
            if self.path == "/health":
                ok = not os.path.exists(f"down-{name}")
                self.send(200 if ok else 503, {"backend": name, "ok": ok})
                return
            served += 1
            print(f"{name}: {self.command} {self.path} (#{served})", flush=True)
            self.send(200, {"backend": name, "served": served})

        do_POST = do_GET

        def send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    for i, name in enumerate("abc"):
        threading.Thread(target=backend, args=(name, 9001 + i), daemon=True).start()
    print("backends a, b, c on ports 9001, 9002, 9003; Ctrl-C to stop", flush=True)
    threading.Event().wait()
