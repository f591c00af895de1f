"""Redis RESP: every command a client sends, inside MULTI and pipelines too.

Clients send commands as RESP arrays of bulk strings (`*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n`)
or, by hand, as inline lines (`PING\\r\\n`). Large values are streamed through without
being buffered whole; only the first MAX_TEXT bytes of an argument are kept.
"""

from __future__ import annotations

from collections.abc import Callable

from sdtutor.lab.proxy.base import Inspector
from sdtutor.lab.proxy.stats import MAX_TEXT, ProxyStats

MAX_LINE = 65536


def _text(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", errors="replace")


class RedisInspector(Inspector):
    """Records each command as [NAME, arg, …]."""

    def __init__(self, stats: ProxyStats) -> None:
        super().__init__(stats)
        self._buf = bytearray()
        self._args: list[str] | None = None  # inside an array: the arguments so far
        self._left = 0  # arguments still to come in the array
        self._body_left = -1  # bytes (with CRLF) still to come of a bulk string, or -1
        self._body_size = 0
        self._body = bytearray()

    def from_client(self, data: bytes, reply: Callable[[bytes], None]) -> bytes:
        """Parse the commands in `data` (which is forwarded unchanged)."""
        buf = self._buf
        buf += data
        pos = 0
        while True:
            if self._body_left >= 0:
                take = min(self._body_left, len(buf) - pos)
                room = max(0, min(self._body_size, MAX_TEXT) - len(self._body))
                self._body += buf[pos : pos + min(take, room)]
                pos += take
                self._body_left -= take
                if self._body_left:
                    break
                self._body_left = -1
                self._argument(_text(self._body[: self._body_size]))
                continue
            end = buf.find(b"\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_LINE:
                    raise ValueError("RESP line too long")
                break
            line = bytes(buf[pos:end]).rstrip(b"\r")
            pos = end + 1
            if self._args is None:
                if line.startswith(b"*"):
                    count = int(line[1:])
                    if count > 0:
                        self._args, self._left = [], count
                elif line.strip():
                    self._emit([_text(word) for word in line.split()])
            elif line.startswith(b"$"):
                self._body_size = int(line[1:])
                if self._body_size < 0:
                    self._argument("")
                else:
                    self._body_left = self._body_size + 2
                    self._body = bytearray()
            else:
                raise ValueError("expected a bulk string in a RESP array")
        del buf[:pos]
        return data

    def _argument(self, value: str) -> None:
        assert self._args is not None
        self._args.append(value)
        self._left -= 1
        if self._left == 0:
            args, self._args = self._args, None
            self._emit(args)

    def _emit(self, args: list[str]) -> None:
        if args:
            args[0] = args[0].upper()
            self.stats.add("commands", args)
