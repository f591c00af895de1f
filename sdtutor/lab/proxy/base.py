"""A TCP proxy in threads: forwards to one upstream, counts what it sees, injects faults.

Each accepted client gets an upstream connection and two pump threads (client->server and
server->client). A protocol `Inspector` watches the bytes on the way through and records
what the server sees in `ProxyStats`; it never delays or rewrites them, except PostgreSQL's
TLS / GSS negotiation, which the proxy answers itself with "N" so clients fall back to
plain TCP. Faults (`latency`, `refuse`, `paused`, `drop_connections()`) may be set at any
time from any thread, also while connections are open.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from sdtutor.lab.proxy.stats import ProxyStats

CHUNK = 65536
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "rabbitmq": 5672}


class Inspector:
    """Watches one connection's bytes for one protocol; the base class counts nothing."""

    def __init__(self, stats: ProxyStats) -> None:
        self.stats = stats

    def from_client(self, data: bytes, reply: Callable[[bytes], None]) -> bytes:
        """Observe client bytes; return what to forward (`reply` answers the client)."""
        return data

    def from_server(self, data: bytes) -> None:
        """Observe server bytes (they are forwarded unchanged)."""


def _inspector_for(kind: str) -> type[Inspector]:
    # Imported here so each protocol stays in its own small module.
    from sdtutor.lab.proxy.amqp import AmqpInspector
    from sdtutor.lab.proxy.postgres import PostgresInspector
    from sdtutor.lab.proxy.redis import RedisInspector

    kinds: dict[str, type[Inspector]] = {
        "postgres": PostgresInspector,
        "redis": RedisInspector,
        "rabbitmq": AmqpInspector,
        "tcp": Inspector,
    }
    if kind not in kinds:
        raise ValueError(f"unknown proxy kind {kind!r} (one of {', '.join(kinds)})")
    return kinds[kind]


def upstream_of(url: str, kind: str = "tcp") -> tuple[str, int]:
    """The (host, port) a service URL points at, with the kind's default port."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or DEFAULT_PORTS.get(kind)
    if port is None:
        raise ValueError(f"{url!r} names no port")
    return host, port


class Proxy:
    """A TCP proxy on 127.0.0.1:<free port> that counts per protocol and injects faults."""

    def __init__(self, kind: str, upstream: tuple[str, int]) -> None:
        self.kind = kind
        self.upstream = upstream
        self.stats = ProxyStats()
        self.latency = 0.0
        """Seconds added before forwarding each client->server chunk."""
        self.refuse = False
        """When true, new connections are accepted, then closed at once."""
        self.max_open: int | None = None
        """When set, a new connection past this many open at once is refused like that
        (a service without a bound must not fill a shared server's connection slots)."""
        self._inspector = _inspector_for(kind)
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._connections: set[_Connection] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Proxy:
        """Listen on a free loopback port and start accepting; returns self."""
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self._listener = listener
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"proxy-{self.kind}-accept", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening and close every open connection."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes a thread blocked in accept(); close() alone does not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._running.set()
        self.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The port the proxy listens on (after start())."""
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        return int(self._listener.getsockname()[1])

    def url_for(self, url: str) -> str:
        """The same URL (user, password, path, query) with host:port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{self.port}"))

    # ------------------------------------------------------------------ counting

    def reset_stats(self) -> None:
        """Forget everything counted so far (open connections keep being counted)."""
        self.stats.reset()

    @property
    def open_connections(self) -> int:
        """Connections currently open through the proxy."""
        with self._lock:
            return len(self._connections)

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no connection is open (all traffic counted); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._connections, timeout=timeout)

    # ------------------------------------------------------------------ faults

    @property
    def paused(self) -> bool:
        """When true, nothing is forwarded in either direction; data waits until unpaused."""
        return not self._running.is_set()

    @paused.setter
    def paused(self, value: bool) -> None:
        if value:
            self._running.clear()
        else:
            self._running.set()

    def drop_connections(self) -> None:
        """Close every open connection now, on both sides."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.close()

    # ------------------------------------------------------------------ internals

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None and not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            full = self.max_open is not None and self.open_connections >= self.max_open
            if self.refuse or full:
                self.stats.bump("refused")
                # Linger 0: the client gets a reset at once, not an orderly close.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            self.stats.bump("connections")
            conn = _Connection(self, client)
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=conn.run, name=f"proxy-{self.kind}-conn", daemon=True).start()

    def _wait_running(self, conn: _Connection) -> bool:
        """Block while paused; False if the connection closed meanwhile."""
        while not self._running.wait(0.05):
            if conn.closed.is_set():
                return False
        return not conn.closed.is_set()

    def _forget(self, conn: _Connection) -> None:
        with self._idle:
            self._connections.discard(conn)
            self._idle.notify_all()


class _Connection:
    """One client connection and its upstream, pumped by two threads."""

    def __init__(self, proxy: Proxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()
        self.inspector = proxy._inspector(proxy.stats)
        self._inspecting = True
        self._lock = threading.Lock()
        self._open_pumps = 2

    def run(self) -> None:
        """Connect upstream, then pump both directions until either side ends."""
        try:
            self.upstream = socket.create_connection(self.proxy.upstream, timeout=10)
            self.upstream.settimeout(None)
        except OSError:
            self.close()
            return
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.closed.is_set():  # dropped while connecting
            self.close()
            return
        threading.Thread(target=self._pump_up, daemon=True).start()
        self._pump_down()

    def _pump_up(self) -> None:
        assert self.upstream is not None
        try:
            while True:
                data = self.client.recv(CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        self.upstream.shutdown(socket.SHUT_WR)
                    break
                if not self.proxy._wait_running(self):
                    break
                data = self._inspect_client(data)
                latency = self.proxy.latency
                if latency > 0 and self.closed.wait(latency):
                    break
                if data:
                    self.upstream.sendall(data)
        except OSError:
            self.close()
        finally:
            self._pump_done()

    def _pump_down(self) -> None:
        assert self.upstream is not None
        try:
            while True:
                data = self.upstream.recv(CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        self.client.shutdown(socket.SHUT_WR)
                    break
                if not self.proxy._wait_running(self):
                    break
                self._inspect_server(data)
                self.client.sendall(data)
        except OSError:
            self.close()
        finally:
            self._pump_done()

    def _inspect_client(self, data: bytes) -> bytes:
        if not self._inspecting:
            return data
        try:
            return self.inspector.from_client(data, self.client.sendall)
        except OSError:
            raise
        except Exception:  # garbage on the wire: forward it, stop counting this connection
            self._give_up()
            return data

    def _inspect_server(self, data: bytes) -> None:
        if not self._inspecting:
            return
        try:
            self.inspector.from_server(data)
        except Exception:
            self._give_up()

    def _give_up(self) -> None:
        if self._inspecting:
            self._inspecting = False
            self.proxy.stats.bump("parse_errors")

    def _pump_done(self) -> None:
        with self._lock:
            self._open_pumps -= 1
            last = self._open_pumps == 0
        if last:
            self.close()

    def close(self) -> None:
        """Close both sockets (idempotent); the pumps then end."""
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self.proxy._forget(self)
