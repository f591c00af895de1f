"""`lab shell`: passwords never reach argv, and each prompt works on a real server.

psql gets the password in a 0600 passfile, redis-cli in REDISCLI_AUTH; other users of
the machine can read any process's argv, never its environment or a 0600 file. The
built-in prompts (Redis, RabbitMQ) are driven line by line as a learner would type.
Servers: the machine's PostgreSQL, Redis and RabbitMQ, plus one private PostgreSQL with
scram passwords (the machine's trusts every login on 127.0.0.1, so only a server that
asks for the password shows that psql finds it in the passfile).
"""

from __future__ import annotations

import builtins
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from sdtutor.services.base import Access

REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
PASSWORD = "pa:ss\\wo rd@/%?#é"
"""A password with every character a URL, a passfile or a shell could trip on."""


class Captured:
    """What a monkeypatched subprocess.run was asked to run."""

    argv: list[str]
    env: dict[str, str]
    passfile: str = ""
    passfile_mode: int = 0


def capture_run(monkeypatch: pytest.MonkeyPatch, module: Any) -> Captured:
    """Replace `module.subprocess.run` by a recorder (reading the passfile while it exists)."""
    seen = Captured()

    def fake_run(argv: list[str], env: dict[str, str], **_: Any) -> subprocess.CompletedProcess:
        seen.argv, seen.env = list(argv), dict(env)
        if "PGPASSFILE" in env:
            path = Path(env["PGPASSFILE"])
            seen.passfile = path.read_text(encoding="utf-8")
            seen.passfile_mode = stat.S_IMODE(path.stat().st_mode)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(module.subprocess, "run", fake_run)
    return seen


def assert_not_in_argv(password: str, argv: list[str]) -> None:
    for shown in {password, quote(password, safe=""), quote(password)}:
        assert not any(shown in arg for arg in argv), f"the password is in argv: {argv}"


def feed(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    """Answer the prompt's input() with these lines; reading past them fails the test."""
    answers = iter(lines)

    def fake_input(prompt: str = "") -> str:
        print(prompt, end="")
        try:
            line = next(answers)
        except StopIteration:
            raise AssertionError("the prompt read past its last line") from None
        print(line)
        return line

    monkeypatch.setattr(builtins, "input", fake_input)


@pytest.fixture(autouse=True)
def _history_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in prompts write their history under SDTUTOR_HOME: never the real one."""
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "history-home"))


def replies(output: str, prompt: str) -> list[str]:
    """The prompt's answer to each command, in order (the text after one prompt's line)."""
    chunks = output.split(prompt)[1:]
    return ["\n".join(chunk.splitlines()[1:]).strip() for chunk in chunks]


# ---------------------------------------------------------------- psql


def test_run_psql_puts_the_password_in_a_private_passfile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sdtutor.services import postgres

    monkeypatch.setenv("PGPASSWORD", "from-the-environment")
    seen = capture_run(monkeypatch, postgres)
    url = f"postgresql://lab_user:{quote(PASSWORD, safe='')}@127.0.0.1:5433/lab_db"
    assert postgres.run_psql("/usr/bin/psql", url, "-c", "SELECT 1") == 0

    assert seen.argv == [
        "/usr/bin/psql",
        "postgresql://lab_user@127.0.0.1:5433/lab_db",
        "-c",
        "SELECT 1",
    ]
    assert_not_in_argv(PASSWORD, seen.argv)
    assert "PGPASSWORD" not in seen.env  # visible in /proc/<pid>/environ to root only, but
    # a stale one would also override the passfile
    assert seen.passfile_mode == 0o600
    # libpq's format: host:port:database:user:password, with \ and : escaped.
    assert seen.passfile == "*:*:*:*:pa\\:ss\\\\wo rd@/%?#é\n"
    assert not Path(seen.env["PGPASSFILE"]).exists(), "the passfile outlives psql"


def test_run_psql_without_a_password_writes_no_passfile(monkeypatch: pytest.MonkeyPatch) -> None:
    from sdtutor.services import postgres

    monkeypatch.delenv("PGPASSFILE", raising=False)
    seen = capture_run(monkeypatch, postgres)
    postgres.run_psql("psql", "postgresql://postgres@127.0.0.1:5432/postgres")
    assert seen.argv == ["psql", "postgresql://postgres@127.0.0.1:5432/postgres"]
    assert "PGPASSFILE" not in seen.env


def psql() -> str:
    found = shutil.which("psql")
    assert found, "the shell tests need psql (Debian: postgresql-client)"
    return found


def test_psql_runs_on_the_machine_server_with_the_passfile(
    system_postgres: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # Trust auth: the password is not checked, but psql reads the passfile (and warns
    # about a file others could read) before it connects.
    url = system_postgres.replace("postgres@", f"postgres:{quote(PASSWORD, safe='')}@", 1)
    assert "postgres:" in url
    from sdtutor.services.postgres import run_psql

    code = run_psql(psql(), url, "-X", "-A", "-t", "-c", "select 1")
    out, err = capfd.readouterr()
    assert (code, out.strip()) == (0, "1"), err
    assert "WARNING" not in err and "permissions" not in err


@pytest.fixture(scope="module")
def scram_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL that asks for scram passwords; yields its admin URL."""
    from sdtutor.services.local import LocalPostgres

    previous = os.environ.get("SDTUTOR_HOME")
    os.environ["SDTUTOR_HOME"] = str(tmp_path_factory.mktemp("shells-home"))
    server = LocalPostgres("shells")
    try:
        yield server.ensure_running()
    finally:
        server.destroy()
        if previous is None:
            os.environ.pop("SDTUTOR_HOME", None)
        else:
            os.environ["SDTUTOR_HOME"] = previous


@pytest.mark.slow
def test_psql_logs_in_with_the_passfile_on_a_scram_server(
    scram_server: str, capfd: pytest.CaptureFixture[str]
) -> None:
    import psycopg
    from psycopg import sql

    from sdtutor.services.postgres import run_psql

    role = f"sdtutor_test_shell_{secrets.token_hex(4)}"
    with psycopg.connect(scram_server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
    host = scram_server.rsplit("@", 1)[1].split("/", 1)[0]
    try:
        url = f"postgresql://{role}:{quote(PASSWORD, safe='')}@{host}/postgres"
        code = run_psql(psql(), url, "-X", "-A", "-t", "-c", "SELECT current_user")
        out, err = capfd.readouterr()
        assert (code, out.strip()) == (0, role), err

        wrong = f"postgresql://{role}:not-it@{host}/postgres"
        code = run_psql(psql(), wrong, "-X", "-c", "SELECT 1")
        out, err = capfd.readouterr()
        assert code != 0
        assert "password authentication failed" in err
    finally:
        with psycopg.connect(scram_server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# ---------------------------------------------------------------- Redis


def test_redis_shell_gives_the_password_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sdtutor.services import redis

    monkeypatch.setattr(redis.shutil, "which", lambda name: f"/usr/bin/{name}")
    seen = capture_run(monkeypatch, redis)
    url = f"redis://lab_user:{quote(PASSWORD, safe='')}@127.0.0.1:6390/2"
    access = Access(url, "sdtutor:ab12cd34:caching:")
    assert redis.RedisKind().shell(access) == 0

    assert seen.argv == [
        "/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", "6390", "--user", "lab_user", "-n", "2",
    ]  # fmt: skip
    assert_not_in_argv(PASSWORD, seen.argv)
    assert seen.env["REDISCLI_AUTH"] == PASSWORD
    assert "sdtutor:ab12cd34:caching:" in capsys.readouterr().out


@pytest.fixture
def redis_user() -> Iterator[tuple[str, str]]:
    """A temporary ACL user on the machine's Redis, limited to a prefix; yields (url, prefix)."""
    from sdtutor.services.redis import client, delete_prefix

    token = secrets.token_hex(4)
    name, prefix = f"sdtutor-test-shell-{token}", f"sdtutor-test-shell:{token}:"
    admin = client(REDIS)
    admin.execute_command(
        "ACL", "SETUSER", name, "reset", "on", f">{PASSWORD}",
        f"~{prefix}*", "+@all", "-@dangerous",
    )  # fmt: skip
    try:
        yield f"redis://{name}:{quote(PASSWORD, safe='')}@127.0.0.1:6379/0", prefix
    finally:
        delete_prefix(admin, prefix)
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


def test_redis_cli_logs_in_as_the_lab_user(redis_user: tuple[str, str]) -> None:
    assert shutil.which("redis-cli"), "the shell tests need redis-cli (Debian: redis-tools)"
    url, prefix = redis_user
    code = (
        "import sys\n"
        "from sdtutor.services.base import Access\n"
        "from sdtutor.services.redis import RedisKind\n"
        "sys.exit(RedisKind().shell(Access(sys.argv[1], sys.argv[2])))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, url, prefix],
        input=f"ACL WHOAMI\nPING\nSET {prefix}k v\nGET {prefix}k\nGET elsewhere\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Your keys live under {prefix} (type QUIT to leave)."
    user = url.split("//", 1)[1].split(":", 1)[0]
    assert lines[1:5] == [user, "PONG", "OK", "v"]
    assert "NOPERM" in lines[5]  # the ACL user cannot read outside its prefix


def test_builtin_redis_prompt(
    redis_user: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sdtutor.services.redis import builtin_prompt

    url, prefix = redis_user
    feed(
        monkeypatch,
        f'SET {prefix}greeting "hello world"',
        f"GET {prefix}greeting",
        f"HSET {prefix}h a 1 b 2",
        f"HGETALL {prefix}h",
        f"GET {prefix}missing",
        f"INCR {prefix}greeting",
        "GET someone-elses-key",
        'GET "unclosed',
        "",
        "PING",
        "quit",
    )
    assert builtin_prompt(Access(url, prefix)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Redis, keys under {prefix}.")
    said = replies(out, "redis> ")
    assert said[:5] == [
        "OK",
        '"hello world"',
        "(integer) 2",
        '1) "a"\n2) "1"\n3) "b"\n4) "2"',
        "(nil)",
    ]
    assert said[5] == "(error) value is not an integer or out of range"
    assert said[6].startswith("(error)") and "no permissions to access" in said[6]
    assert said[7] == "(error) No closing quotation"
    assert said[8:] == ["", "PONG", ""]  # the empty line is skipped; quit ends it


# ---------------------------------------------------------------- RabbitMQ


@pytest.fixture
def amqp_names() -> Iterator[str]:
    """A prefix under sdtutor-test-shell. with a queue `orders` bound to a topic exchange
    `events` (key order.*); everything under it is deleted afterwards."""
    from sdtutor.services.rabbitmq import connect

    prefix = f"sdtutor-test-shell.{secrets.token_hex(4)}."
    conn = connect(AMQP)
    channel = conn.channel()
    channel.exchange_declare(prefix + "events", "topic", auto_delete=False)
    channel.queue_declare(prefix + "orders")
    channel.queue_bind(prefix + "orders", prefix + "events", routing_key="order.*")
    try:
        yield prefix
    finally:
        channel = conn.channel()
        channel.queue_delete(prefix + "orders")
        channel.exchange_delete(prefix + "events")
        conn.close()


def message_count(queue: str) -> int:
    from sdtutor.services.rabbitmq import connect

    conn = connect(AMQP)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def test_builtin_amqp_prompt(
    amqp_names: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sdtutor.services.amqpshell import prompt

    prefix = amqp_names
    feed(
        monkeypatch,
        'publish "" orders "order 1"',
        "publish events order.created 'order 2'",
        "publish events invoice.sent 'nobody wants this'",
        "peek orders",
        "queues",
        "peek orders 1",
        "peek missing",
        "exchanges",
        "publish events",
        "purge orders",
        "peek orders",
        "quit",
    )
    assert prompt(Access(AMQP, prefix), None, ["orders", "missing"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"RabbitMQ (names start with {prefix}).")
    said = replies(out, "amqp> ")
    assert said[0] == f"published to (default) with key {prefix}orders"
    assert said[1] == f"published to {prefix}events with key order.created"
    assert said[2] == f"not delivered: no queue is bound to {prefix}events for key invoice.sent"
    # peek shows both messages, and they stay in the queue.
    assert said[3] == f"[{prefix}orders] order 1\n[order.created] order 2"
    assert said[4] == (
        f"{prefix}orders  messages=2  consumers=0\n{prefix}missing  (not declared yet)"
    )
    assert said[5] == f"[{prefix}orders] (redelivered) order 1"
    assert said[6].startswith(f"(refused) NOT_FOUND - no queue '{prefix}missing'")
    assert said[7] == "This broker does not let sdtutor list exchanges (no management plugin)."
    assert said[8].startswith("Commands (names without the prefix are fine):")
    assert said[9] == f"purged 2 message(s) from {prefix}orders"
    assert said[10] == f"{prefix}orders is empty."
    assert said[11] == ""
    assert message_count(prefix + "orders") == 0


def test_amqp_prompt_names_with_the_prefix_already_are_kept(
    amqp_names: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sdtutor.services.amqpshell import prompt

    prefix = amqp_names
    feed(monkeypatch, f"publish {prefix}events order.paid paid", f"peek {prefix}orders", "exit")
    assert prompt(Access(AMQP, prefix)) == 0
    said = replies(capsys.readouterr().out, "amqp> ")
    assert said[:2] == [
        f"published to {prefix}events with key order.paid",
        "[order.paid] paid",
    ]
    assert message_count(prefix + "orders") == 1  # peeked, not taken


def test_prompts_end_at_end_of_input(
    amqp_names: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sdtutor.services.amqpshell import prompt
    from sdtutor.services.redis import builtin_prompt

    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(builtins, "input", eof)
    assert builtin_prompt(Access(REDIS, "sdtutor-test-shell:")) == 0
    assert prompt(Access(AMQP, amqp_names)) == 0


def _prompt_session(home: Path, code: str, keys: list[bytes], prompts: tuple[bytes, ...]) -> str:
    """Run a built-in prompt (`code`, in a new interpreter) on a pty, as a terminal would,
    and type `keys`, each after a prompt ending in one of `prompts`; returns the screen."""
    import pty
    import select
    import time

    env = {**os.environ, "SDTUTOR_HOME": str(home), "NO_COLOR": "1", "TERM": "xterm"}
    env.pop("INPUTRC", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the prompt, its stdin and stdout the pty
        os.execvpe(sys.executable, [sys.executable, "-c", code], env)
    screen = b""
    pending = list(keys)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child has exited
                    break
                if not chunk:
                    break
                screen += chunk
                if pending and screen.rstrip().endswith(prompts):
                    os.write(fd, pending.pop(0))
                    screen += b"\n"  # so that the same prompt is not answered twice
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return screen.decode(errors="replace")


def _sql_prompt_session(home: Path, url: str, keys: list[bytes]) -> str:
    code = (
        "from sdtutor.cli.sqlshell import builtin_prompt; "
        f"raise SystemExit(builtin_prompt({url!r}))"
    )
    return _prompt_session(home, code, keys, (b"=>", b"->"))


def test_builtin_sql_prompt_has_line_editing_and_history(
    tmp_path: Path, system_postgres: str
) -> None:
    home = tmp_path / "home"
    # A statement over two lines, its typo mended with the Left arrow (readline's).
    first = _sql_prompt_session(
        home, system_postgres, [b"SELECT 40\r", b"  + 2 AS answe;\x1b[Dr\r", b"\\q\r"]
    )
    assert "42" in first and "error" not in first.lower()
    history = (home / "history" / "sql").read_text()
    assert "SELECT 40 + 2 AS answer;" in history.splitlines()  # one entry, not two lines
    assert stat.S_IMODE((home / "history" / "sql").stat().st_mode) == 0o600
    # A new session: the Up arrow brings the statement back.
    second = _sql_prompt_session(home, system_postgres, [b"\x1b[A\r", b"\\q\r"])
    assert "SELECT 40 + 2 AS answer;" in second and "42" in second


LEFT, UP, HOME_KEY = b"\x1b[D", b"\x1b[A", b"\x01"


def test_builtin_redis_prompt_has_line_editing_and_history(
    tmp_path: Path, redis_user: tuple[str, str]
) -> None:
    url, prefix = redis_user
    home = tmp_path / "home"
    code = (
        "from sdtutor.services.base import Access\n"
        "from sdtutor.services.redis import builtin_prompt\n"
        f"raise SystemExit(builtin_prompt(Access({url!r}, {prefix!r})))\n"
    )
    key = f"{prefix}greeting".encode()
    # A typo mended with Home (readline's Ctrl-A): `T key` becomes `GET key`.
    first = _prompt_session(
        home,
        code,
        [b"SET " + key + b" 'hello there'\r", b"T " + key + HOME_KEY + b"GE\r", b"QUIT\r"],
        (b"redis>",),
    )
    assert first.count('"hello there"') == 1 and "ERR unknown command" not in first
    path = home / "history" / "redis"
    entries = path.read_text().splitlines()
    assert f"GET {prefix}greeting" in entries and f"SET {prefix}greeting 'hello there'" in entries
    assert "QUIT" not in entries  # Up in the next session brings back work, not the quit
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A new session: Up brings back the last command, and it runs again.
    second = _prompt_session(home, code, [UP + b"\r", b"quit\r"], (b"redis>",))
    assert f"GET {prefix}greeting" in second and '"hello there"' in second


def test_builtin_amqp_prompt_has_line_editing_and_history(tmp_path: Path, amqp_names: str) -> None:
    prefix = amqp_names
    home = tmp_path / "home"
    code = (
        "from sdtutor.services.base import Access\n"
        "from sdtutor.services.amqpshell import prompt\n"
        f"raise SystemExit(prompt(Access({AMQP!r}, {prefix!r})))\n"
    )
    keys = [b"publish '' ordrs hello" + LEFT * 8 + b"e\r", b"peek orders\r", b"exit\r"]
    first = _prompt_session(home, code, keys, (b"amqp>",))
    assert f"published to (default) with key {prefix}orders" in first
    assert f"[{prefix}orders] hello" in first
    path = home / "history" / "amqp"
    assert path.read_text().splitlines()[-2:] == ["publish '' orders hello", "peek orders"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = _prompt_session(home, code, [UP + UP + b"\r", b"exit\r"], (b"amqp>",))
    assert f"published to (default) with key {prefix}orders" in second
    assert message_count(prefix + "orders") == 2


# ---------------------------------------------------------------- SQL files


SCRIPT = """\
-- The learner's indexes, with the psql commands a learner types in `lab shell` too.
\\set ECHO none
CREATE TABLE things (id int PRIMARY KEY, label text);
\\di
CREATE INDEX things_label
    ON things (label);
\\echo it's done
"""

REFUSED = """\
CREATE TABLE before_it (id int);
\\di
CREATE INDEX nope_idx
    ON nope (x);
CREATE TABLE after_it (id int);
"""


@pytest.fixture
def scratch_db(system_postgres: str) -> Iterator[str]:
    """A database of this test's own on the machine's server; yields its URL."""
    from sdtutor.services import postgres

    name = f"sdtutor_test_shells_{secrets.token_hex(4)}"
    postgres.create_database(system_postgres, name)
    try:
        yield postgres.with_database(system_postgres, name)
    finally:
        postgres.drop_database(system_postgres, name)


def relations(url: str) -> set[str]:
    from sdtutor.services.postgres import admin

    with admin(url) as s:
        rows = s.rows("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace")
    return {str(r[0]) for r in rows}


@pytest.mark.parametrize("native", [True, False], ids=["psql", "builtin"])
def test_apply_file_takes_what_lab_shell_f_takes(
    native: bool, scratch_db: str, tmp_path: Path
) -> None:
    from sdtutor.services.postgres import PostgresKind, StatementRefused

    if native:
        psql()  # the psql path needs psql
    script = tmp_path / "indexes.sql"
    script.write_text(SCRIPT)
    notes: list[str] = []
    assert PostgresKind().apply_file(Access(scratch_db), script, native, notes) == 2
    assert {"things", "things_pkey", "things_label"} <= relations(scratch_db)
    if native:
        assert notes == []  # psql ran its own commands
    else:
        assert notes == [
            "Skipped psql commands in indexes.sql: \\set (line 2), \\di (line 4), \\echo "
            "(line 7); sdtutor's own runner sends SQL only (install psql to run them)."
        ]

    # A refused statement stops the file there, named by its first line, either way.
    refused = tmp_path / "refused.sql"
    refused.write_text(REFUSED)
    with pytest.raises(StatementRefused) as caught:
        PostgresKind().apply_file(Access(scratch_db), refused, native)
    assert caught.value.message == 'refused.sql:3: relation "nope" does not exist'
    assert "before_it" in relations(scratch_db) and "after_it" not in relations(scratch_db)


def test_apply_file_with_psql_keeps_the_password_out_of_argv(
    scram_server: str, tmp_path: Path
) -> None:
    import psycopg
    from psycopg import sql

    from sdtutor.services.postgres import PostgresKind

    role = f"sdtutor_test_shell_{secrets.token_hex(4)}"
    with psycopg.connect(scram_server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(*[sql.Identifier(role)] * 2))
    host = scram_server.rsplit("@", 1)[1].split("/", 1)[0]
    script = tmp_path / "indexes.sql"
    script.write_text(SCRIPT)
    try:
        url = f"postgresql://{role}:{quote(PASSWORD, safe='')}@{host}/{role}"
        assert PostgresKind().apply_file(Access(url), script) == 2  # logged in: the passfile
        assert "things_label" in relations(url)
    finally:
        with psycopg.connect(scram_server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_builtin_run_file_shows_di_and_skips_other_psql_commands(
    scratch_db: str, tmp_path: Path
) -> None:
    script = tmp_path / "indexes.sql"
    script.write_text(SCRIPT)
    code = (
        "import sys; from pathlib import Path\n"
        "from sdtutor.services.base import Access\n"
        "from sdtutor.services.postgres import PostgresKind\n"
        "PostgresKind().run_file(Access(sys.argv[1]), Path(sys.argv[2]), prefer_native=False)\n"
    )
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", code, scratch_db, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "skipped \\set ECHO none  indexes.sql:2" in out
    assert "CREATE TABLE  indexes.sql:3" in out
    assert "\\di  indexes.sql:4" in out and "things_pkey" in out  # the index list, as shown
    assert "CREATE INDEX  indexes.sql:5" in out
    assert "skipped \\echo it's done  indexes.sql:7" in out


@pytest.mark.slow
def test_lab_shell_f_builtin_uses_sdtutors_own_runner(
    external_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.conftest import plain, sdtutor

    psql()  # with psql installed, only --builtin picks sdtutor's runner
    workspace = tmp_path / "ws"
    started = sdtutor("lab", "start", "indexing", "-w", str(workspace), env=external_env)
    assert started.returncode == 0, started.stderr
    try:
        (workspace / "indexes.sql").write_text(
            "\\set ON_ERROR_STOP on\nCREATE INDEX mine ON orders (user_id);\n\\di\n"
        )
        shell = ("lab", "shell", "indexing", "-f", "indexes.sql")
        builtin = sdtutor(*shell, "--builtin", env=external_env, cwd=workspace)
        assert builtin.returncode == 0, builtin.stderr
        out = plain(builtin.stdout)
        assert "skipped \\set ON_ERROR_STOP on indexes.sql:1" in out
        assert "CREATE INDEX indexes.sql:2" in out and "\\di indexes.sql:3" in out
        assert "mine" in out and "List of relations" not in out  # psql's title for \di
        native = sdtutor(*shell, env=external_env, cwd=workspace)
        assert native.returncode == 0, native.stderr
        assert "List of relations" in native.stdout and "skipped" not in native.stdout

        # A file that is not one of the lab's apply-files: the same choice.
        scratch = workspace / "scratch.sql"
        scratch.write_text("SELECT 6 * 7 AS answer;\n\\echo done\n")
        builtin = sdtutor(
            "lab", "shell", "indexing", "-f", str(scratch), "--builtin", env=external_env
        )
        assert builtin.returncode == 0, builtin.stderr
        out = plain(builtin.stdout)
        assert "answer" in out and "42" in out and "skipped \\echo done scratch.sql:2" in out
    finally:
        sdtutor("lab", "stop", "indexing", "--purge", env=external_env)
