"""A tiny HTTP service: GET / answers "hello", GET /count asks the database."""

import http.server
import os
import sys

import psycopg


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/count":
            with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
                body = str(conn.execute("SELECT 7").fetchone()[0]).encode()
        else:
            body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("served", self.path, flush=True)


print("starting on", os.environ["PORT"], flush=True)
sys.stdout.flush()
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
