"""PostgreSQL wire protocol (v3): statements executed and rows returned, as the server sees them.

Frontend messages after the startup packet are a type byte and an int32 length (which
counts itself). A simple Query ('Q') is one statement. The extended protocol parses a
statement ('P', named or unnamed), binds it to a portal ('B') and executes the portal
('E'); each Execute counts once, with the text of the Parse that made its statement, so
prepared statements, pipelines, executemany, stream() and server-side cursors all count.
"""

from __future__ import annotations

from collections.abc import Callable

from sdtutor.lab.proxy.base import Inspector
from sdtutor.lab.proxy.stats import ProxyStats, clip

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP = 10_000
# Frontend messages whose body we read; every other message is skipped unbuffered.
READ_BODIES = frozenset(b"QPBEC")


def _cstring(body: bytes, start: int = 0) -> tuple[str, int]:
    end = body.index(b"\0", start)
    return body[start:end].decode("utf-8", errors="replace"), end + 1


class _Messages:
    """Splits a byte stream into (type, length) messages across reads, skipping bodies."""

    def __init__(self, wanted: frozenset[int]) -> None:
        self.wanted = wanted
        self.buf = bytearray()
        self.skip = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Complete wanted messages in `data` (others are only counted by type)."""
        out: list[tuple[int, bytes]] = []
        buf = self.buf
        buf += data
        pos = 0
        while True:
            if self.skip:
                take = min(self.skip, len(buf) - pos)
                pos += take
                self.skip -= take
                if self.skip:
                    break
            if len(buf) - pos < 5:
                break
            kind = buf[pos]
            length = int.from_bytes(buf[pos + 1 : pos + 5], "big")
            if length < 4:
                raise ValueError("bad message length")
            if kind not in self.wanted:
                out.append((kind, b""))
                pos += 5
                self.skip = length - 4
                continue
            if len(buf) - pos < 1 + length:
                break
            out.append((kind, bytes(buf[pos + 5 : pos + 1 + length])))
            pos += 1 + length
        del buf[:pos]
        return out


class PostgresInspector(Inspector):
    """Counts statements (client->server) and DataRow messages (server->client)."""

    def __init__(self, stats: ProxyStats) -> None:
        super().__init__(stats)
        self._startup: bytearray | None = bytearray()
        self._frontend = _Messages(READ_BODIES)
        self._backend = _Messages(frozenset())
        self._statements: dict[str, str] = {}
        self._portals: dict[str, str] = {}

    def from_client(self, data: bytes, reply: Callable[[bytes], None]) -> bytes:
        """Answer TLS/GSS requests with "N", forward the startup packet, then watch messages."""
        if self._startup is None:
            self._handle(self._frontend.feed(data))
            return data
        buf = self._startup
        buf += data
        out = bytearray()
        while len(buf) >= 8:
            length = int.from_bytes(buf[0:4], "big")
            code = int.from_bytes(buf[4:8], "big")
            if not 8 <= length <= MAX_STARTUP:
                raise ValueError("not a PostgreSQL startup packet")
            if len(buf) < length:
                break
            packet = bytes(buf[:length])
            del buf[:length]
            if code in (SSL_REQUEST, GSSENC_REQUEST) and length == 8:
                reply(b"N")  # no TLS through the proxy: the client carries on in plain TCP
                continue
            out += packet
            rest = bytes(buf)
            self._startup = None
            if code != CANCEL_REQUEST:
                self._handle(self._frontend.feed(rest))
            out += rest
            break
        return bytes(out)

    def from_server(self, data: bytes) -> None:
        """Count DataRow ('D') messages."""
        rows = sum(1 for kind, _ in self._backend.feed(data) if kind == ord("D"))
        if rows:
            self.stats.bump("rows", rows)

    def _handle(self, messages: list[tuple[int, bytes]]) -> None:
        for kind, body in messages:
            if kind == ord("Q"):
                self.stats.add("statements", clip(_cstring(body)[0]))
            elif kind == ord("P"):
                name, at = _cstring(body)
                self._statements[name] = clip(_cstring(body, at)[0])
            elif kind == ord("B"):
                portal, at = _cstring(body)
                statement, _ = _cstring(body, at)
                self._portals[portal] = self._statements.get(statement, "")
            elif kind == ord("E"):
                portal, _ = _cstring(body)
                self.stats.add("statements", self._portals.get(portal, ""))
            elif kind == ord("C"):
                name, _ = _cstring(body, 1)
                target = self._statements if body[:1] == b"S" else self._portals
                target.pop(name, None)
