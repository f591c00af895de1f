"""AMQP 0-9-1: every method frame, as "class.method", in both directions.

After the 8-byte protocol header ("AMQP\\0\\0\\x09\\x01") each frame is type (1 byte),
channel (2), payload size (4), payload, and the end octet 0xCE. Method frames (type 1)
start with a class id and a method id (2 bytes each). Content bodies are skipped
unbuffered.
"""

from __future__ import annotations

from collections.abc import Callable

from sdtutor.lab.proxy.base import Inspector
from sdtutor.lab.proxy.stats import ProxyStats

PROTOCOL_HEADER = b"AMQP"
METHOD_FRAME = 1

CLASSES: dict[int, tuple[str, dict[int, str]]] = {
    10: (
        "connection",
        {
            10: "start",
            11: "start-ok",
            20: "secure",
            21: "secure-ok",
            30: "tune",
            31: "tune-ok",
            40: "open",
            41: "open-ok",
            50: "close",
            51: "close-ok",
            60: "blocked",
            61: "unblocked",
            70: "update-secret",
            71: "update-secret-ok",
        },
    ),
    20: (
        "channel",
        {10: "open", 11: "open-ok", 20: "flow", 21: "flow-ok", 40: "close", 41: "close-ok"},
    ),
    40: (
        "exchange",
        {
            10: "declare",
            11: "declare-ok",
            20: "delete",
            21: "delete-ok",
            30: "bind",
            31: "bind-ok",
            40: "unbind",
            51: "unbind-ok",
        },
    ),
    50: (
        "queue",
        {
            10: "declare",
            11: "declare-ok",
            20: "bind",
            21: "bind-ok",
            30: "purge",
            31: "purge-ok",
            40: "delete",
            41: "delete-ok",
            50: "unbind",
            51: "unbind-ok",
        },
    ),
    60: (
        "basic",
        {
            10: "qos",
            11: "qos-ok",
            20: "consume",
            21: "consume-ok",
            30: "cancel",
            31: "cancel-ok",
            40: "publish",
            50: "return",
            60: "deliver",
            70: "get",
            71: "get-ok",
            72: "get-empty",
            80: "ack",
            90: "reject",
            100: "recover-async",
            110: "recover",
            111: "recover-ok",
            120: "nack",
        },
    ),
    85: ("confirm", {10: "select", 11: "select-ok"}),
    90: (
        "tx",
        {
            10: "select",
            11: "select-ok",
            20: "commit",
            21: "commit-ok",
            30: "rollback",
            31: "rollback-ok",
        },
    ),
}


def method_name(class_id: int, method_id: int) -> str:
    """ "basic.publish" for (60, 40); unknown ids read "class-N.method-M"."""
    cls, methods = CLASSES.get(class_id, (f"class-{class_id}", {}))
    return f"{cls}.{methods.get(method_id, f'method-{method_id}')}"


class _Frames:
    """Splits an AMQP byte stream into method names, across reads."""

    def __init__(self, header: bool) -> None:
        self.buf = bytearray()
        self.header = header  # the client starts with the 8-byte protocol header
        self.skip = 0

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        buf = self.buf
        buf += data
        pos = 0
        if self.header:
            if len(buf) < 8:
                return out
            if not buf.startswith(PROTOCOL_HEADER):
                raise ValueError("not AMQP")
            self.header = False
            pos = 8
        while True:
            if self.skip:
                take = min(self.skip, len(buf) - pos)
                pos += take
                self.skip -= take
                if self.skip:
                    break
            if len(buf) - pos < 7:
                break
            frame_type = buf[pos]
            size = int.from_bytes(buf[pos + 3 : pos + 7], "big")
            if frame_type == METHOD_FRAME:
                if len(buf) - pos < 11:
                    break
                class_id = int.from_bytes(buf[pos + 7 : pos + 9], "big")
                method_id = int.from_bytes(buf[pos + 9 : pos + 11], "big")
                out.append(method_name(class_id, method_id))
            elif frame_type not in (2, 3, 4, 8):
                raise ValueError("bad AMQP frame type")
            pos += 7
            self.skip = size + 1  # the payload and the frame-end octet
        del buf[:pos]
        return out


class AmqpInspector(Inspector):
    """Records client methods in `methods` and server methods in `server_methods`."""

    def __init__(self, stats: ProxyStats) -> None:
        super().__init__(stats)
        self._client = _Frames(header=True)
        self._server = _Frames(header=False)

    def from_client(self, data: bytes, reply: Callable[[bytes], None]) -> bytes:
        """Record the client's method frames."""
        for name in self._client.feed(data):
            self.stats.add("methods", name)
        return data

    def from_server(self, data: bytes) -> None:
        """Record the server's method frames."""
        for name in self._server.feed(data):
            self.stats.add("server_methods", name)
