"""The wire-level proxy against the machine's real PostgreSQL, Redis and RabbitMQ."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from sdtutor.lab.proxy import Proxy, upstream_of

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
KEY = "sdtutor-test-proxy:"
QUEUE = "sdtutor-test-proxy.q"


@pytest.fixture
def pg(system_postgres: str) -> Iterator[Proxy]:
    """A proxy in front of the machine's PostgreSQL."""
    with Proxy("postgres", upstream_of(system_postgres, "postgres")) as proxy:
        yield proxy


@pytest.fixture
def rd() -> Iterator[Proxy]:
    """A proxy in front of the machine's Redis; our keys are deleted afterwards."""
    import redis

    with Proxy("redis", upstream_of(REDIS_URL, "redis")) as proxy:
        yield proxy
    direct = redis.Redis.from_url(REDIS_URL)
    keys = list(direct.scan_iter(KEY + "*"))
    if keys:
        direct.delete(*keys)
    direct.close()


@pytest.fixture
def mq() -> Iterator[Proxy]:
    """A proxy in front of the machine's RabbitMQ; our queue is deleted afterwards."""
    import pika

    with Proxy("rabbitmq", upstream_of(AMQP_URL, "rabbitmq")) as proxy:
        yield proxy
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().queue_delete(QUEUE)
    conn.close()


def test_url_for_keeps_everything_but_host_and_port(pg: Proxy) -> None:
    url = pg.url_for("postgresql://app:s3cret@db.example:6543/shop?sslmode=prefer")
    assert url == f"postgresql://app:s3cret@127.0.0.1:{pg.port}/shop?sslmode=prefer"
    assert pg.url_for("redis://127.0.0.1/2") == f"redis://127.0.0.1:{pg.port}/2"
    assert upstream_of("amqp://guest:guest@rabbit/", "rabbitmq") == ("rabbit", 5672)


def test_postgres_counts_every_client_api(pg: Proxy) -> None:
    import psycopg

    url = pg.url_for(PG_URL)  # default sslmode=prefer: the proxy answers the TLS request "N"
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(3):
            conn.execute("SELECT 'loop', %s::int", (i,))
        cur = conn.cursor()
        cur.executemany("SELECT 'many', %s::int", [(1,), (2,), (3,), (4,)])
        for _ in cur.stream("SELECT 'stream', generate_series(1, 5)"):
            pass
        with conn.transaction(), conn.cursor(name="named") as named:
            named.execute("SELECT 'named', generate_series(1, 7)")
            rows = list(named)
        assert len(rows) == 7
        cur.execute("SELECT 'iter', generate_series(1, 3)")
        assert len(list(cur)) == 3
        for i in range(2):
            conn.execute("SELECT 'prepared', %s::int", (i,), prepare=True)
        with cur.copy("COPY (SELECT 'copy' FROM generate_series(1, 2)) TO STDOUT") as copy:
            for _ in copy:
                pass
        with conn.pipeline():
            conn.execute("SELECT 'pipe', 1")
            conn.execute("SELECT 'pipe', 2")
    with psycopg.connect(url) as second:
        second.execute("SELECT 'second'")
    assert pg.wait_idle()
    stats = pg.stats
    statements = stats.statements

    def count(marker: str) -> int:
        return sum(f"'{marker}'" in s for s in statements)

    assert count("loop") == 3
    assert count("many") == 4
    assert count("stream") == 1
    assert any(s.startswith('DECLARE "named"') for s in statements)
    assert any(s.startswith("FETCH FORWARD") for s in statements)
    assert count("iter") == 1
    assert count("prepared") == 2
    assert count("copy") == 1
    assert count("pipe") == 2
    assert count("second") == 1
    assert stats.connections == 2
    assert stats.statement_count == len(statements)
    # 3 + 4 + 5 + 7 + 3 + 2 DataRows; COPY rows are CopyData, not DataRow; 'second' is 1.
    assert stats.rows == 3 + 4 + 5 + 7 + 3 + 2 + 2 + 1


def test_postgres_messages_split_across_reads_and_packed_in_one(pg: Proxy) -> None:
    """A raw client sends its query one byte at a time, then three queries in one write."""
    params = b"user\0postgres\0database\0postgres\0\0"
    startup = struct.pack("!ii", 8 + len(params), 196608) + params
    with socket.create_connection(("127.0.0.1", pg.port)) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
        assert sock.recv(1) == b"N"
        sock.sendall(startup)
        _read_until_ready(sock)

        def query(sql: str) -> bytes:
            body = sql.encode() + b"\0"
            return b"Q" + struct.pack("!i", 4 + len(body)) + body

        for byte in query("SELECT 'one byte at a time'"):
            sock.sendall(bytes([byte]))
            time.sleep(0.001)
        _read_until_ready(sock)
        sock.sendall(query("SELECT 1") + query("SELECT 2") + query("SELECT 3"))
        _read_until_ready(sock, count=3)
        sock.sendall(b"X\0\0\0\x04")
    assert pg.wait_idle()
    assert pg.stats.statements == [
        "SELECT 'one byte at a time'",
        "SELECT 1",
        "SELECT 2",
        "SELECT 3",
    ]
    assert pg.stats.rows == 4


def _read_until_ready(sock: socket.socket, count: int = 1) -> None:
    """Read server messages up to the count-th ReadyForQuery ('Z')."""
    buf = b""
    while True:
        while len(buf) >= 5:
            kind, length = buf[0:1], struct.unpack("!i", buf[1:5])[0]
            if len(buf) < 1 + length:
                break
            buf = buf[1 + length :]
            if kind == b"Z":
                count -= 1
                if count == 0:
                    assert not buf, "more came than was asked for"
                    return
            assert kind != b"E", "the server answered with an error"
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        buf += data


def test_postgres_tls_required_is_refused_clearly(pg: Proxy) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="SSL"):
        psycopg.connect(pg.url_for(PG_URL) + "?sslmode=require", connect_timeout=5)


def test_redis_counts_commands_pipelines_and_multi(rd: Proxy) -> None:
    import redis

    client = redis.Redis.from_url(rd.url_for(REDIS_URL), decode_responses=True)
    rd.reset_stats()
    big = "v" * 300_000  # arrives in several reads
    client.set(KEY + "big", big, ex=60)
    assert client.get(KEY + "big") == big
    with client.pipeline(transaction=False) as pipe:
        for _i in range(5):
            pipe.incr(KEY + "n")
        pipe.execute()
    with client.pipeline(transaction=True) as pipe:
        pipe.set(KEY + "a", "1")
        pipe.expire(KEY + "a", 30)
        pipe.execute()
    client.close()
    with socket.create_connection(("127.0.0.1", rd.port)) as sock:  # an inline command
        sock.sendall(b"PING\r\n")
        assert sock.recv(100).startswith(b"+PONG")
    assert rd.wait_idle()
    names = rd.stats.command_names()
    assert names.count("INCRBY") + names.count("INCR") == 5
    assert names[names.index("MULTI") : names.index("EXEC") + 1] == [
        "MULTI",
        "SET",
        "EXPIRE",
        "EXEC",
    ]
    assert "PING" in names
    set_big = next(c for c in rd.stats.commands if c[0] == "SET" and c[1] == KEY + "big")
    assert set_big[1:] == [KEY + "big", set_big[2], "EX", "60"]
    assert set_big[2].startswith("vvv") and len(set_big[2]) <= 8193
    assert rd.stats.count_commands("get") == 1


def test_rabbitmq_counts_methods(mq: Proxy) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(mq.url_for(AMQP_URL)))
    channel = conn.channel()
    channel.confirm_delivery()
    channel.queue_declare(QUEUE)
    channel.basic_publish("", QUEUE, b"x" * 200_000)  # body frames are skipped, not parsed
    channel.basic_publish("", QUEUE, b"small")
    for _ in range(2):
        method, _, _ = channel.basic_get(QUEUE)
        assert method is not None
        channel.basic_ack(method.delivery_tag)
    conn.close()
    assert mq.wait_idle()
    methods = mq.stats.methods
    assert methods[:3] == ["connection.start-ok", "connection.tune-ok", "connection.open"]
    assert "confirm.select" in methods and "queue.declare" in methods
    assert mq.stats.count_methods("basic.publish") == 2
    assert mq.stats.count_methods("basic.ack") == 2
    assert mq.stats.server_methods.count("basic.get-ok") == 2
    assert mq.stats.parse_errors == 0


def test_latency_is_added_to_each_request(pg: Proxy) -> None:
    import psycopg

    with psycopg.connect(pg.url_for(PG_URL), autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("SELECT 1")
        fast = time.perf_counter() - started
        pg.latency = 0.2
        started = time.perf_counter()
        conn.execute("SELECT 1")
        slow = time.perf_counter() - started
    assert slow >= 0.2 > fast


def test_drop_connections_is_seen_by_the_client(pg: Proxy) -> None:
    import psycopg

    conn = psycopg.connect(pg.url_for(PG_URL), autocommit=True)
    conn.execute("SELECT 1")
    assert pg.open_connections == 1
    pg.drop_connections()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    assert pg.wait_idle()
    with psycopg.connect(pg.url_for(PG_URL)) as again:  # new connections still work
        again.execute("SELECT 1")


def test_refuse_then_accept_again(rd: Proxy) -> None:
    import redis

    rd.refuse = True
    client = redis.Redis.from_url(rd.url_for(REDIS_URL), retry=None, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()
    assert rd.stats.refused >= 1
    rd.refuse = False
    client = redis.Redis.from_url(rd.url_for(REDIS_URL), socket_timeout=2)
    assert client.ping()
    client.close()


def test_pause_holds_traffic_until_unpaused(pg: Proxy) -> None:
    import psycopg

    conn = psycopg.connect(pg.url_for(PG_URL), autocommit=True)
    pg.paused = True
    done = threading.Event()
    result: list[object] = []

    def query() -> None:
        result.append(conn.execute("SELECT 42").fetchone())
        done.set()

    thread = threading.Thread(target=query)
    thread.start()
    assert not done.wait(0.5), "a query went through a paused proxy"
    pg.paused = False
    assert done.wait(5)
    thread.join()
    conn.close()
    assert result == [(42,)]


def test_close_ends_open_connections(system_postgres: str) -> None:
    import psycopg

    proxy = Proxy("postgres", upstream_of(system_postgres, "postgres")).start()
    conn = psycopg.connect(proxy.url_for(PG_URL), autocommit=True)
    port = proxy.port
    proxy.close()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown proxy kind"):
        Proxy("mysql", ("127.0.0.1", 3306))


def test_max_open_turns_away_connections_past_the_bound(pg: Proxy) -> None:
    import psycopg

    pg.max_open = 2
    held = [psycopg.connect(pg.url_for(PG_URL)) for _ in range(2)]
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg.url_for(PG_URL), connect_timeout=3)
        assert pg.stats.refused == 1 and pg.open_connections == 2
        held.pop().close()
        deadline = time.monotonic() + 3  # the proxy sees the close a moment later
        while pg.open_connections > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with psycopg.connect(pg.url_for(PG_URL)) as again:  # room again: it is let in
            assert again.execute("SELECT 1").fetchone() == (1,)
    finally:
        for conn in held:
            conn.close()
        pg.max_open = None
