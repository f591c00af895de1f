"""Private local servers (sdtutor.services.local) against the real binaries.

Each kind starts once per test session in its own SDTUTOR_HOME; the session fixture
destroys them and checks that nothing is left (no process, no file). As root, servers
must run as the account `sdtutor-svc`, never as root or the system `postgres`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdtutor.errors import ProviderError
from sdtutor.services.local import (
    LocalPostgres,
    LocalRabbitMQ,
    LocalRedis,
    LocalServer,
    existing,
)
from sdtutor.services.local import account as acct

pytestmark = pytest.mark.slow

BOOT_TIMES: dict[str, float] = {}
"""Seconds per kind: first start (init + boot) and a warm restart; printed at the end."""


@contextlib.contextmanager
def sdtutor_home(path: Path) -> Iterator[None]:
    """SDTUTOR_HOME set to `path` for a while (session fixtures cannot monkeypatch)."""
    previous = os.environ.get("SDTUTOR_HOME")
    os.environ["SDTUTOR_HOME"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SDTUTOR_HOME", None)
        else:
            os.environ["SDTUTOR_HOME"] = previous


def expected_uid() -> int:
    """Who servers must run as here."""
    return pwd.getpwnam(acct.SERVICE_ACCOUNT).pw_uid if os.geteuid() == 0 else os.getuid()


def leftovers(server: LocalServer, server_id: str) -> list[int]:
    """Processes (any account) still carrying a server's id in their environment."""
    marker = f"SDTUTOR_SERVER_ID={server_id}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            status = (entry / "status").read_text()
            if "\nState:\tZ" in status:
                continue
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def assert_gone(server: LocalServer, folder: Path | None, server_id: str) -> None:
    """A destroyed server: no process, no data folder, no state file."""
    assert not server.running()
    assert leftovers(server, server_id) == []
    assert folder is None or not os.path.lexists(folder), f"{folder} is still there"
    assert not server.state_file.exists()


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One SDTUTOR_HOME for the servers every test here shares; all destroyed at the end."""
    path = tmp_path_factory.mktemp("local-servers-home")
    yield path
    with sdtutor_home(path):
        names = [
            LocalPostgres("replica"),
            LocalPostgres("main"),
            LocalRedis("main"),
            LocalRabbitMQ("main"),
        ]
        recorded = [(s, s.folder(), s.state().get("server_id", "")) for s in names]
        data_home = acct.data_home()
        for server, _folder, _sid in recorded:
            server.destroy()
        for server, folder, sid in recorded:
            assert_gone(server, folder, sid)
        if data_home is not None and os.geteuid() == 0:
            assert not os.path.lexists(data_home), f"{data_home} is still there"
    if BOOT_TIMES:
        print("\nBoot times (s): " + ", ".join(f"{k} {v:.2f}" for k, v in BOOT_TIMES.items()))


@pytest.fixture(autouse=True)
def _in_session_home(session_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDTUTOR_HOME", str(session_home))


def _start(server: LocalServer, home: Path) -> LocalServer:
    with sdtutor_home(home):
        started = time.monotonic()
        server.ensure_running()
        BOOT_TIMES[f"{server.kind} first"] = time.monotonic() - started
    return server


@pytest.fixture(scope="session")
def postgres(session_home: Path) -> LocalPostgres:
    server = LocalPostgres("main")
    _start(server, session_home)
    return server


@pytest.fixture(scope="session")
def redis_server(session_home: Path) -> LocalRedis:
    server = LocalRedis("main")
    _start(server, session_home)
    return server


@pytest.fixture(scope="session")
def rabbitmq(session_home: Path) -> LocalRabbitMQ:
    server = LocalRabbitMQ("main")
    _start(server, session_home)
    return server


KINDS = ["postgres", "redis", "rabbitmq"]


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> LocalServer:
    fixture = "redis_server" if request.param == "redis" else request.param
    started: LocalServer = request.getfixturevalue(fixture)
    return started


# ---------------------------------------------------------------- clients


def talk(server: LocalServer) -> str:
    """Connect with the kind's real client through the admin URL; returns who we are."""
    url = server.ensure_running()
    if isinstance(server, LocalPostgres):
        import psycopg

        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_user, 1 + 1").fetchone()
        assert row is not None and row[1] == 2
        return str(row[0])
    if isinstance(server, LocalRedis):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=10)
        try:
            assert client.ping()
            return str(client.acl_whoami())
        finally:
            client.close()
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare("", exclusive=True)
    finally:
        connection.close()
    return url.split("//", 1)[1].split(":", 1)[0]


def write_marker(server: LocalServer) -> None:
    """Leave something that must survive a restart."""
    url = server.admin_url()
    if isinstance(server, LocalPostgres):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('survives')")
    elif isinstance(server, LocalRedis):
        import redis

        with redis.Redis.from_url(url) as client:
            client.set("sdtutor:test:kept", "gone after a restart")
    else:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            connection.channel().queue_declare("sdtutor.test.kept", durable=True)
        finally:
            connection.close()


def marker_kept(server: LocalServer) -> bool:
    url = server.admin_url()
    if isinstance(server, LocalPostgres):
        import psycopg

        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM kept").fetchone() != (0,)
    if isinstance(server, LocalRedis):
        import redis

        with redis.Redis.from_url(url) as client:
            return bool(client.exists("sdtutor:test:kept"))
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare("sdtutor.test.kept", passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the given processes listen on."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found: set[tuple[str, int]] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc/net shows the address as 32-bit words in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, words), int(port, 16)))
    return found


def cmdlines() -> list[bytes]:
    lines = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            lines.append((entry / "cmdline").read_bytes())
    return lines


# ---------------------------------------------------------------- every kind


def test_find_binaries_is_cheap_and_says_where() -> None:
    for cls in (LocalPostgres, LocalRedis, LocalRabbitMQ):
        found = cls.find_binaries()
        assert found.ok, f"{cls.kind}: {found.detail} — {found.fix}"
        assert found.services == (cls.kind,)
        assert cls.find_binaries() is found  # cached
        if os.geteuid() == 0:
            assert acct.SERVICE_ACCOUNT in found.detail


def test_answers_through_its_admin_url(server: LocalServer) -> None:
    who = talk(server)
    assert (
        who == {"postgres": "sdtutor", "redis": "default", "rabbitmq": "sdtutor-admin"}[server.kind]
    )


def test_runs_as_the_service_account_and_never_as_root(server: LocalServer) -> None:
    pids = server.processes()
    assert pids, "the server's processes are found"
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        uids = {int(u) for u in fields["Uid"].split()}
        assert uids == {expected_uid()}, f"pid {pid} runs as {uids}"
        if os.geteuid() == 0:
            gid = pwd.getpwnam(acct.SERVICE_ACCOUNT).pw_gid
            assert {int(g) for g in fields["Gid"].split()} == {gid}
            assert fields["Groups"].strip() == "", "no supplementary groups (root's are dropped)"


def test_password_is_in_no_command_line(server: LocalServer) -> None:
    secrets = [server.state()["password"].encode()]
    if isinstance(server, LocalRedis):
        assert b"requirepass" not in b"".join(cmdlines())
    for secret in secrets:
        assert not [line for line in cmdlines() if secret in line]


def test_listens_only_on_loopback(server: LocalServer) -> None:
    sockets = listening(server.processes())
    assert ("127.0.0.1", server.state()["port"]) in sockets
    assert {address for address, _port in sockets} <= {"127.0.0.1", "::1"}, sockets


def test_state_and_data_are_private(server: LocalServer) -> None:
    assert server.state_file.stat().st_mode & 0o077 == 0
    folder = server.folder()
    assert folder is not None
    info = folder.lstat()
    assert info.st_mode & 0o077 == 0 and info.st_uid == expected_uid()
    if os.geteuid() == 0:
        assert folder.parent.parent == acct.SYSTEM_DATA_ROOT
        base = acct.SYSTEM_DATA_ROOT.lstat()
        assert base.st_uid == 0 and base.st_mode & 0o777 == 0o711
        assert not str(folder).startswith("/var/tmp")


def test_restarts_on_a_new_port_keeping_its_data(server: LocalServer) -> None:
    write_marker(server)
    before = server.state()["port"]
    server.stop()
    assert not server.running()
    started = time.monotonic()
    server.ensure_running()
    BOOT_TIMES[f"{server.kind} warm"] = time.monotonic() - started
    assert server.state()["port"] != before
    talk(server)
    # Redis keeps nothing by design (save "", appendonly no): a restart starts empty.
    assert marker_kept(server) is (server.kind != "redis")


def test_a_second_ensure_running_reuses_the_running_server(server: LocalServer) -> None:
    pid, port = server.main_pid(), server.state()["port"]
    server.ensure_running()
    assert (server.main_pid(), server.state()["port"]) == (pid, port)


# ---------------------------------------------------------------- PostgreSQL


def test_postgres_keeps_two_phase_commit_on(postgres: LocalPostgres) -> None:
    import psycopg

    with psycopg.connect(postgres.admin_url()) as conn:
        assert conn.execute("SHOW max_prepared_transactions").fetchone() == ("10",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def _lag(conn: Any) -> tuple[bool, bool]:
    """On a replica: (received WAL not yet replayed, a transaction was replayed)."""
    row = conn.execute(
        "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn(),"
        " pg_last_xact_replay_timestamp() IS NOT NULL"
    ).fetchone()
    return bool(row[0]), bool(row[1])


def rows_are(conn: Any, table: str, count: int) -> bool:
    """True when `table` exists on the replica and has `count` rows."""
    import psycopg

    try:
        return bool(conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (count,))
    except psycopg.errors.UndefinedTable:
        return False


def test_replica_streams_and_honours_its_apply_delay(postgres: LocalPostgres) -> None:
    import psycopg

    replica = LocalPostgres("replica")
    started = time.monotonic()
    url = replica.ensure_replica(postgres)
    BOOT_TIMES["postgres replica first"] = time.monotonic() - started
    with psycopg.connect(postgres.admin_url(), autocommit=True) as primary:
        primary.execute("CREATE TABLE IF NOT EXISTS replicated (v int)")
        primary.execute("INSERT INTO replicated VALUES (1)")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        deadline = time.monotonic() + 10
        while not rows_are(conn, "replicated", 1):
            assert time.monotonic() < deadline, "a row written on the primary never arrived"
            time.sleep(0.05)
        receiver = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
        assert receiver == ("streaming",)

    # Same primary, a delay now: settings change in place (no new copy).
    pid = replica.main_pid()
    replica.ensure_replica(postgres, apply_delay_ms=2000)
    assert replica.main_pid() == pid
    with psycopg.connect(postgres.admin_url(), autocommit=True) as primary:
        primary.execute("INSERT INTO replicated VALUES (2)")
    written = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        time.sleep(0.5)
        assert conn.execute("SELECT count(*) FROM replicated").fetchone() == (1,)
        behind, _ = _lag(conn)
        assert behind, "the replica received the WAL but holds back replaying it"
        while conn.execute("SELECT count(*) FROM replicated").fetchone() != (2,):
            assert time.monotonic() - written < 15, "the delayed row never arrived"
            time.sleep(0.05)
        assert time.monotonic() - written >= 1.5
    replica.ensure_replica(postgres, apply_delay_ms=0)

    replication_password = postgres.state()["replication_password"].encode()
    assert not [line for line in cmdlines() if replication_password in line]
    assert not [line for line in cmdlines() if b"password=" in line]


def test_replica_follows_its_primary_to_a_new_port(postgres: LocalPostgres) -> None:
    import psycopg

    replica = LocalPostgres("replica")
    replica.ensure_replica(postgres)
    postgres.stop()
    postgres.ensure_running()
    url = replica.ensure_replica(postgres)
    with psycopg.connect(postgres.admin_url(), autocommit=True) as primary:
        primary.execute("CREATE TABLE IF NOT EXISTS followed (v int)")
        primary.execute("INSERT INTO followed VALUES (1)")
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 15
        while not rows_are(conn, "followed", 1):
            assert time.monotonic() < deadline, "the replica lost its primary after a restart"
            time.sleep(0.1)


# ---------------------------------------------------------------- RabbitMQ


def test_rabbitmq_has_no_guest_and_ctl_takes_secrets_on_stdin(rabbitmq: LocalRabbitMQ) -> None:
    import pika

    users = rabbitmq.ctl("list_users", "--quiet")
    assert "guest" not in users and "sdtutor-admin" in users
    rabbitmq.ctl("add_vhost", "sdtutor.test.vhost")
    rabbitmq.ctl("add_user", "sdtutor_test_user", stdin="s3cret-on-stdin")
    try:
        rabbitmq.ctl(
            "set_permissions", "-p", "sdtutor.test.vhost", "sdtutor_test_user", ".*", ".*", ".*"
        )
        params = pika.URLParameters(
            f"amqp://sdtutor_test_user:s3cret-on-stdin@127.0.0.1:{rabbitmq.state()['port']}"
            "/sdtutor.test.vhost"
        )
        pika.BlockingConnection(params).close()
        with pytest.raises(ProviderError, match="rabbitmqctl add_user failed"):
            rabbitmq.ctl("add_user", "sdtutor_test_user", stdin="again")
    finally:
        rabbitmq.ctl("delete_user", "sdtutor_test_user")
        rabbitmq.ctl("delete_vhost", "sdtutor.test.vhost")


def test_rabbitmq_node_is_private(rabbitmq: LocalRabbitMQ) -> None:
    state = rabbitmq.state()
    assert state["node"].startswith("sdtutor-") and state["node"].endswith("@localhost")
    assert state["epmd_port"] != 4369
    sockets = listening(rabbitmq.processes())
    assert ("127.0.0.1", state["dist_port"]) in sockets
    assert ("127.0.0.1", state["epmd_port"]) in sockets
    cookie = rabbitmq.folder() / ".erlang.cookie"  # type: ignore[operator]
    assert cookie.stat().st_mode & 0o777 == 0o400 and cookie.stat().st_uid == expected_uid()
    assert not [line for line in cmdlines() if b"setcookie" in line]


# ---------------------------------------------------------------- safety


@pytest.mark.parametrize("cls", [LocalPostgres, LocalRedis])
def test_a_link_planted_where_the_data_goes_is_refused(
    cls: type[LocalServer], session_home: Path, tmp_path: Path
) -> None:
    owner = acct.ensure_account()
    home = acct.data_home(create=True, owner=owner)
    assert home is not None
    target = tmp_path / "elsewhere"
    target.mkdir()
    server = cls("planted-link")
    link = home / server.dirname
    link.symlink_to(target)
    try:
        with pytest.raises(ProviderError, match="not a folder sdtutor made"):
            server.ensure_running()
        assert list(target.iterdir()) == []
        assert link.is_symlink()
        assert not server.running()
    finally:
        link.unlink()
        server.destroy()


def test_open_dir_refuses_a_link_on_the_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.close(acct.open_dir(tmp_path / "real"))
    with pytest.raises(ProviderError, match="symbolic links"):
        acct.open_dir(tmp_path / "link")


def test_ctrl_c_after_initdb_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "home"))
    server = LocalPostgres("main")
    seen: dict[str, Any] = {}

    def progress(step: str, fraction: float | None = None) -> None:
        if step.startswith("Starting"):
            seen["id"] = server.state()["server_id"]
            seen["folder"] = server.folder()
            assert (seen["folder"] / "data" / "PG_VERSION").is_file()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        server.ensure_running(progress)
    assert_gone(server, seen["folder"], seen["id"])
    if os.geteuid() == 0:
        assert not os.path.lexists(seen["folder"].parent), "the home's data folder went too"


def test_ctrl_c_while_rabbitmq_boots_stops_it_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "home"))
    server = LocalRabbitMQ("main")
    seen: dict[str, Any] = {}

    def progress(step: str, fraction: float | None = None) -> None:
        if fraction and server.running():  # the node's processes exist by now
            seen["id"] = server.state()["server_id"]
            seen["folder"] = server.folder()
            seen["pids"] = server.processes()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        server.ensure_running(progress)
    assert seen["pids"], "the interrupt came while the node ran"
    assert_gone(server, seen["folder"], seen["id"])
    assert not [
        pid
        for pid in seen["pids"]
        if Path(f"/proc/{pid}").exists()
        and "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    ]


def test_destroy_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "home"))
    servers: list[LocalServer] = [LocalPostgres("main"), LocalRedis("main")]
    for one in servers:
        one.ensure_running()
        write_marker(one)
    assert {(s.kind, s.name) for s in existing()} == {("postgres", "main"), ("redis", "main")}
    data_home = acct.data_home()
    assert data_home is not None
    recorded = [(s, s.folder(), s.state()["server_id"]) for s in servers]
    for one in servers:
        one.destroy()
    for one, folder, sid in recorded:
        assert_gone(one, folder, sid)
    services = tmp_path / "home" / "services"
    assert {p.name for p in services.iterdir()} <= {
        "home.lock",
        "postgres-main.lock",
        "redis-main.lock",
    }, "only empty lock files stay in SDTUTOR_HOME"
    if os.geteuid() == 0:
        assert not os.path.lexists(data_home)
    else:
        assert not any(p.is_dir() for p in services.iterdir())


def test_two_terminals_starting_at_once_share_one_server(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "SDTUTOR_HOME": str(tmp_path / "home")}
    code = "from sdtutor.services.local import LocalRedis; print(LocalRedis().ensure_running())"
    terminals = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    urls = {terminal.communicate(timeout=120)[0].strip() for terminal in terminals}
    with sdtutor_home(tmp_path / "home"):
        server = LocalRedis()
        try:
            assert urls == {server.admin_url()}
            assert server.running()
        finally:
            folder, sid = server.folder(), server.state()["server_id"]
            server.destroy()
        assert_gone(server, folder, sid)
