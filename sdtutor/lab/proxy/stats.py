"""What a proxy saw on the wire, per protocol; shared between its connection threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

MAX_RECORDED = 100_000
"""Entries kept per list; beyond this the counts go on but the lists stop growing."""

MAX_TEXT = 8192
"""Characters kept of one SQL text or one Redis argument."""


def clip(text: str) -> str:
    """A recorded text, cut to MAX_TEXT characters."""
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


@dataclass
class ProxyStats:
    """Counted at the proxy, as the server sees it; live and thread-safe.

    Lists keep the first MAX_RECORDED entries (texts cut to MAX_TEXT characters); the
    `*_count` properties keep counting past that.
    """

    connections: int = 0
    """Client connections accepted and forwarded."""
    refused: int = 0
    """Client connections closed at once because `Proxy.refuse` was set."""
    statements: list[str] = field(default_factory=list)
    """postgres: the SQL of every simple Query and of every Execute of a portal."""
    rows: int = 0
    """postgres: DataRow messages sent by the server."""
    commands: list[list[str]] = field(default_factory=list)
    """redis: every command, name upper-cased, arguments decoded as UTF-8."""
    methods: list[str] = field(default_factory=list)
    """rabbitmq: every AMQP method frame client->server as "class.method"."""
    server_methods: list[str] = field(default_factory=list)
    """rabbitmq: every AMQP method frame server->client (basic.deliver, basic.get-ok, …)."""
    parse_errors: int = 0
    """Connections whose traffic could not be parsed (still forwarded, no longer counted)."""
    _counts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def statement_count(self) -> int:
        """Statements executed, including any past MAX_RECORDED."""
        return self._counts.get("statements", len(self.statements))

    @property
    def command_count(self) -> int:
        """Redis commands sent, including any past MAX_RECORDED."""
        return self._counts.get("commands", len(self.commands))

    @property
    def method_count(self) -> int:
        """AMQP client methods sent, including any past MAX_RECORDED."""
        return self._counts.get("methods", len(self.methods))

    def command_names(self) -> list[str]:
        """The names of the Redis commands, in order (e.g. ["GET", "SET"])."""
        with self._lock:
            return [c[0] for c in self.commands if c]

    def count_commands(self, *names: str) -> int:
        """How many recorded Redis commands have one of these names (case-insensitive)."""
        wanted = {n.upper() for n in names}
        return sum(1 for n in self.command_names() if n in wanted)

    def count_methods(self, *names: str) -> int:
        """How many recorded client AMQP methods are one of these ("basic.publish", …)."""
        with self._lock:
            return sum(1 for m in self.methods if m in names)

    def add(self, name: str, item: object) -> None:
        """Append to one of the lists (statements, commands, methods, server_methods)."""
        with self._lock:
            self._counts[name] = self._counts.get(name, len(getattr(self, name))) + 1
            target: list[object] = getattr(self, name)
            if len(target) < MAX_RECORDED:
                target.append(item)

    def bump(self, name: str, by: int = 1) -> None:
        """Add to one of the integer counters (connections, refused, rows, parse_errors)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def snapshot(self) -> ProxyStats:
        """A copy that no longer changes."""
        with self._lock:
            return ProxyStats(
                connections=self.connections,
                refused=self.refused,
                statements=list(self.statements),
                rows=self.rows,
                commands=[list(c) for c in self.commands],
                methods=list(self.methods),
                server_methods=list(self.server_methods),
                parse_errors=self.parse_errors,
                _counts=dict(self._counts),
            )

    def since(self, before: ProxyStats) -> ProxyStats:
        """What was added after `before` (a snapshot of this object), as a new snapshot."""
        now = self.snapshot()
        counts = {
            name: now._counts.get(name, len(getattr(now, name)))
            - before._counts.get(name, len(getattr(before, name)))
            for name in ("statements", "commands", "methods", "server_methods")
        }
        return ProxyStats(
            connections=now.connections - before.connections,
            refused=now.refused - before.refused,
            statements=now.statements[len(before.statements) :],
            rows=now.rows - before.rows,
            commands=now.commands[len(before.commands) :],
            methods=now.methods[len(before.methods) :],
            server_methods=now.server_methods[len(before.server_methods) :],
            parse_errors=now.parse_errors - before.parse_errors,
            _counts=counts,
        )

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            for f in fields(self):
                if f.name == "_lock":
                    continue
                value = getattr(self, f.name)
                if isinstance(value, list | dict):
                    value.clear()
                else:
                    setattr(self, f.name, 0)
