"""The check API against the machine's real PostgreSQL, Redis and RabbitMQ.

Every name here is this module's own: a database `sdtutor_test_checkapi_<random>`, Redis
keys under `sdtutor-test-checkapi:<random>:`, RabbitMQ queues and exchanges under
`sdtutor-test-checkapi.<random>.`; all of them are removed at the end.
"""

from __future__ import annotations

import secrets
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import (
    APPLICATION_NAME,
    CannotCheck,
    CheckContext,
    Fail,
    default_deadline,
    run_checks,
)
from sdtutor.lab.results import CheckResult
from sdtutor.services import postgres

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
TOKEN = secrets.token_hex(4)
REDIS_PREFIX = f"sdtutor-test-checkapi:{TOKEN}:"
AMQP_PREFIX = f"sdtutor-test-checkapi.{TOKEN}."


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def db(system_postgres: str) -> Iterator[str]:
    """A database of this module's own, with a small `orders` table."""
    name = f"sdtutor_test_checkapi_{TOKEN}"
    postgres.create_database(system_postgres, name)
    url = postgres.with_database(system_postgres, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, "
                "status text NOT NULL, created_at timestamptz NOT NULL)"
            )
            conn.execute(
                "INSERT INTO orders SELECT g, g % 100, "
                "CASE WHEN g % 50 = 0 THEN 'pending' ELSE 'done' END, "
                "timestamptz '2024-01-01' + g * interval '1 minute' "
                "FROM generate_series(1, 20000) AS g"
            )
            conn.execute("CREATE INDEX orders_user_created_idx ON orders (user_id, created_at)")
            conn.execute("VACUUM ANALYZE orders")
        yield url
    finally:
        postgres.drop_database(system_postgres, name)


@pytest.fixture
def make_lab(tmp_path: Path) -> Callable[..., LabSpec]:
    """Write a tiny lab whose checks.py holds `checks` (source) and load it."""

    def make(checks: str, ids: list[str], time_limit: float = 20) -> LabSpec:
        root = tmp_path / f"lab-{secrets.token_hex(3)}"
        (root / "starter").mkdir(parents=True)
        listed = "".join(f"  - id: {i}\n    title: {i}\n" for i in ids) or "  []\n"
        (root / "lab.yaml").write_text(
            "format_version: 1\ntopic: checkapi\ntitle: Check API\nservices: [postgres]\n"
            f"setup: {{}}\nworkspace: []\ntime_limit: {time_limit}\nchecks:\n{listed}"
            "hints: [none]\n"
        )
        (root / "README.md").write_text("# Check API\n")
        header = "from sdtutor.lab.checks import *  # noqa: F403\n\n"
        (root / "checks.py").write_text(header + textwrap.dedent(checks))
        return load_lab(root)

    return make


@pytest.fixture
def blocker(db: str) -> Iterator[Callable[..., psycopg.Connection[Any]]]:
    """Sessions that take locks as a learner in `lab shell` would, then walk away."""
    opened: list[psycopg.Connection[Any]] = []

    def open_session(*statements: str) -> psycopg.Connection[Any]:
        conn = psycopg.connect(db, application_name="learner-shell")
        for statement in statements:
            conn.execute(statement)  # not autocommit: the transaction stays open
        opened.append(conn)
        return conn

    yield open_session
    for conn in opened:
        conn.close()


def _ctx(lab: LabSpec, workspace: Path, urls: dict[str, str], **kw: Any) -> CheckContext:
    return CheckContext(lab, workspace, urls, **kw)


def _timed(fn: Callable[[], list[CheckResult]]) -> tuple[list[CheckResult], float]:
    start = time.monotonic()
    results = fn()
    return results, time.monotonic() - start


# ------------------------------------------------------------------ checker hygiene


def test_checker_connections_carry_timeouts_and_a_name(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    ctx = _ctx(make_lab("", []), tmp_path, {"postgres": db})
    try:
        settings = ctx.query(
            "SELECT current_setting('application_name'), current_setting('statement_timeout'),"
            " current_setting('lock_timeout'),"
            " current_setting('max_parallel_workers_per_gather')"
        )[0]
    finally:
        ctx.close()
    assert settings == (APPLICATION_NAME, "10s", "3s", "0")


IDLE_UPDATE = "UPDATE orders SET status = status WHERE id = 1"


def test_an_idle_transaction_blocking_create_index_is_named(
    make_lab: Callable[..., LabSpec],
    db: str,
    blocker: Callable[..., psycopg.Connection[Any]],
    tmp_path: Path,
) -> None:
    lab = make_lab(
        """
        @check("scratch-index")
        def scratch_index(ctx):
            with ctx.scratch():
                ctx.query("CREATE INDEX orders_status_idx ON orders (status)")
            return "built"
        """,
        ["scratch-index"],
    )
    learner = blocker(IDLE_UPDATE)
    pid = learner.info.backend_pid
    results, took = _timed(lambda: run_checks(lab, tmp_path, {"postgres": db}))
    assert took < 6, f"the blocked check took {took:.1f} s"
    (result,) = results
    assert not result.passed and result.status == "failed"
    message = result.message
    assert str(pid) in message, message
    assert "idle in transaction" in message and "UPDATE orders SET status" in message
    assert "COMMIT" in message and "ROLLBACK" in message
    assert f"pg_terminate_backend({pid})" in message
    assert "on orders" in message  # what the checker was waiting for
    assert any(e.kind == "table" and str(pid) in e.as_text() for e in result.evidence)


def test_lock_table_blocking_a_plain_query_is_named(
    make_lab: Callable[..., LabSpec],
    db: str,
    blocker: Callable[..., psycopg.Connection[Any]],
    tmp_path: Path,
) -> None:
    # The check uses the raw connection, not a helper: run_checks still explains it.
    lab = make_lab(
        """
        @check("count")
        def count(ctx):
            return str(ctx.pg().execute("SELECT count(*) FROM orders").fetchone()[0])
        """,
        ["count"],
    )
    pid = blocker("LOCK TABLE orders").info.backend_pid
    results, took = _timed(lambda: run_checks(lab, tmp_path, {"postgres": db}))
    assert took < 6
    assert not results[0].passed
    assert str(pid) in results[0].message and "LOCK TABLE orders" in results[0].message


def test_vacuum_analyze_waits_for_a_lock_too(
    make_lab: Callable[..., LabSpec],
    db: str,
    blocker: Callable[..., psycopg.Connection[Any]],
    tmp_path: Path,
) -> None:
    lab = make_lab("", [])
    pid = blocker("LOCK TABLE orders IN SHARE UPDATE EXCLUSIVE MODE").info.backend_pid
    ctx = _ctx(lab, tmp_path, {"postgres": db}, lock_timeout=1.5)
    start = time.monotonic()
    try:
        with pytest.raises(Fail) as failed:
            ctx.analyze("orders")
    finally:
        ctx.close()
    assert time.monotonic() - start < 4
    assert str(pid) in failed.value.message and "VACUUM ANALYZE orders" in failed.value.message


def test_a_slow_statement_is_stopped_by_statement_timeout(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    lab = make_lab(
        """
        @check("slow")
        def slow(ctx):
            ctx.query("SELECT pg_sleep(30)")
            return "slept"
        """,
        ["slow"],
    )
    results, took = _timed(lambda: run_checks(lab, tmp_path, {"postgres": db}, statement_timeout=1))
    assert took < 4
    assert results[0].status == "failed" and "statement_timeout" in results[0].message


def test_one_deadline_for_the_whole_run(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    lab = make_lab(
        """
        @check("quick")
        def quick(ctx):
            return Pass("quick", Evidence("note", "text", "fine"))

        @check("sleeper")
        def sleeper(ctx):
            ctx.query("SELECT pg_sleep(60) AS sdtutor_test_sleeper")
            return "woke up"

        @check("after")
        def after(ctx):
            return "ran"
        """,
        ["quick", "sleeper", "after"],
    )
    results, took = _timed(lambda: run_checks(lab, tmp_path, {"postgres": db}, deadline=2))
    assert took < 5, f"run_checks took {took:.1f} s with a 2 s deadline"
    assert [r.status for r in results] == ["passed", "timeout", "not run"]
    assert "ran out of time" in results[1].message
    assert "Not run" in results[2].message and not results[2].passed
    assert results[1].to_json()["status"] == "timeout"
    # The statement was cancelled on the server, not left running.
    with psycopg.connect(db, autocommit=True) as conn:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                "AND query LIKE '%%sdtutor_test_sleeper%%' AND pid <> pg_backend_pid()"
            ).fetchone()
            if left == (0,):
                break
            time.sleep(0.1)
        assert left == (0,)


def test_a_check_stuck_in_python_is_stopped_at_the_deadline(
    make_lab: Callable[..., LabSpec], tmp_path: Path
) -> None:
    lab = make_lab(
        """
        @check("spin")
        def spin(ctx):
            while True:
                try:
                    pass
                except Exception:  # a careless check cannot swallow the stop
                    pass
        """,
        ["spin"],
    )
    results, took = _timed(lambda: run_checks(lab, tmp_path, {}, deadline=1))
    assert took < 3
    assert results[0].status == "timeout"


def test_default_deadline_is_the_time_limit_per_check(make_lab: Callable[..., LabSpec]) -> None:
    lab = make_lab("", ["a", "b", "c"], time_limit=7)
    assert default_deadline(lab) == 21


# ------------------------------------------------------------------ writing checks


def test_pass_fail_and_crashes_become_results(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    lab = make_lab(
        """
        @check("returns-pass")
        def returns_pass(ctx):
            return Pass("fine", Evidence("count", "text", "3"))

        @check("raises-pass")
        def raises_pass(ctx):
            raise Pass("also fine")

        @check("fails")
        def fails(ctx):
            raise Fail("not yet: do X", Evidence("seen", "text", "Y"))

        @check("crashes")
        def crashes(ctx):
            ctx.query("SELECT * FROM no_such_table")
        """,
        ["returns-pass", "raises-pass", "fails", "crashes"],
    )
    results = {r.id: r for r in run_checks(lab, tmp_path, {"postgres": db})}
    assert results["returns-pass"].passed and results["returns-pass"].evidence[0].data == "3"
    assert results["raises-pass"].passed and results["raises-pass"].message == "also fine"
    assert results["fails"].status == "failed" and results["fails"].message == "not yet: do X"
    assert results["crashes"].status == "error"
    assert "could not finish" in results["crashes"].message
    assert "no_such_table" in results["crashes"].message


def test_scratch_rolls_back_what_a_check_creates(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    ctx = _ctx(make_lab("", []), tmp_path, {"postgres": db})
    try:
        with ctx.scratch():
            ctx.query("CREATE INDEX scratch_idx ON orders (status)")
            ctx.query("DELETE FROM orders")
            assert "scratch_idx" in ctx.indexes("orders").names
        with pytest.raises(Fail), ctx.scratch():
            ctx.query("CREATE TABLE scratch_table (id int)")
            raise Fail("a check that fails inside scratch")
        assert "scratch_idx" not in ctx.indexes("orders").names
        assert ctx.value("SELECT count(*) FROM orders") == 20000
        assert ctx.value("SELECT to_regclass('scratch_table')") is None
    finally:
        ctx.close()


QUERIES = """\
-- Pages of one user's orders.

-- name: by_alias
-- a comment inside is fine
SELECT o.created_at, o.id
FROM orders o
WHERE o.user_id = :user_id AND o.created_at < :before::timestamptz AND o.status LIKE 'p%'
ORDER BY 1 DESC, o.id DESC
LIMIT 5;

-- name: broken
SELECT id FROM orders WHERE AND;

-- name: refused
SELECT id
FROM orders
WHERE no_such_column = :user_id;
"""


def test_named_queries_run_as_written(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    (tmp_path / "queries.sql").write_text(QUERIES)
    ctx = _ctx(make_lab("", []), tmp_path, {"postgres": db})
    try:
        queries = ctx.queries("queries.sql")
        by_alias = queries["by_alias"]
        assert by_alias.params == {"user_id", "before"}
        assert [str(k) for k in by_alias.order_keys()] == ["created_at DESC", "id DESC"]
        rows = ctx.fetch(by_alias, {"user_id": 0, "before": "2024-02-01"})
        assert [set(r) for r in rows] == [{"created_at", "id"}] * 5
        assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)

        with pytest.raises(Fail) as missing:
            queries["next_page"]
        assert "-- name: next_page" in missing.value.message
        assert "by_alias, broken, refused" in missing.value.message

        with pytest.raises(Fail) as unparseable:
            queries["broken"].tree  # noqa: B018
        assert unparseable.value.message.startswith("queries.sql:12:")

        with pytest.raises(Fail) as refused:
            ctx.fetch(queries["refused"], {"user_id": 1})
        assert refused.value.message.startswith("queries.sql:17: PostgreSQL refused refused")
        assert "no_such_column" in refused.value.message
    finally:
        ctx.close()


def test_plan_assertions_fail_with_the_plan_and_the_catalog(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    ctx = _ctx(make_lab("", []), tmp_path, {"postgres": db})
    latest = "SELECT * FROM orders WHERE user_id = %s ORDER BY created_at DESC LIMIT 5"
    try:
        plan = ctx.plan(latest, (7,), title="plan for user 7")
        indexes = ctx.indexes("orders")
        serving = indexes.leading_with("user_id", "created_at")
        assert serving.names == ["orders_user_created_idx"]
        assert plan.must_use_index(serving, why="x").must_not_sort(why="y") is plan
        assert plan.buffers_at_most(20, why="z").used_index() == "orders_user_created_idx"
        assert plan.rows == 5 and plan.rows_scanned == 5

        unsorted = ctx.plan("SELECT * FROM orders ORDER BY status LIMIT 5")
        with pytest.raises(Fail) as failed:
            unsorted.must_not_sort(why="It sorts every order.")
        assert failed.value.message == "It sorts every order."
        kinds = [(e.kind, e.title) for e in failed.value.evidence]
        assert kinds[0] == ("plan", "query plan") and ("table", "indexes on orders") in kinds
        with pytest.raises(Fail):
            unsorted.must_not_seq_scan(why="It reads the whole table.")
        with pytest.raises(Fail):
            unsorted.buffers_at_most(1, why="Too many buffers.")

        assert ctx.selects_same_rows("orders", "'pending' = status", "status = 'pending'")
        assert ctx.selects_same_rows("orders", "status IN ('pending')", "status = 'pending'")
        assert not ctx.selects_same_rows("orders", "status <> 'done'", "status = 'x'")
    finally:
        ctx.close()


# ------------------------------------------------------------------ Redis


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """The machine's Redis; every key under this module's prefix is deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"The tests need Redis at {REDIS_URL} ({exc}).")
    yield client
    for key in client.scan_iter(match=f"sdtutor-test-checkapi:{TOKEN}*"):
        client.delete(key)
    client.close()


def test_keys_under_the_prefix_with_their_ttls(
    make_lab: Callable[..., LabSpec], redis_client: Any, tmp_path: Path
) -> None:
    redis_client.set(REDIS_PREFIX + "product:1", "{}", ex=300)
    redis_client.set(REDIS_PREFIX + "product:2", "{}")
    redis_client.hset(REDIS_PREFIX + "stats", mapping={"hits": 1})
    # A neighbour whose prefix only looks alike: never one of ours.
    redis_client.set(f"sdtutor-test-checkapi:{TOKEN}x:product:9", "not ours", ex=60)
    ctx = _ctx(make_lab("", []), tmp_path, {"cache": REDIS_URL}, prefixes={"redis": REDIS_PREFIX})
    try:
        assert ctx.redis().get(ctx.key("product:1")) == "{}"
        keys = ctx.keys("product:*")
        assert [(k.key, k.type) for k in keys] == [
            (REDIS_PREFIX + "product:1", "string"),
            (REDIS_PREFIX + "product:2", "string"),
        ]
        _, kind, ttl = keys[0]
        assert kind == "string" and 290 < ttl <= 300 and keys[0].expires
        assert keys[1].ttl == -1 and not keys[1].expires
        assert {k.key for k in ctx.keys("*")} == {
            REDIS_PREFIX + name for name in ("product:1", "product:2", "stats")
        }
        keys.must_exist(why="Nothing was cached.")
        ctx.keys("product:1").must_all_expire(why="x", between=(60, 400))
        with pytest.raises(Fail) as failed:
            keys.must_all_expire(why="Every cached product needs a TTL.", between=(60, 400))
        # The offending key comes first in the evidence, whatever the order of the rest.
        assert failed.value.message == "Every cached product needs a TTL."
        first = failed.value.evidence[0].data[1][0]
        assert first == (REDIS_PREFIX + "product:2", "string", "never expires")
    finally:
        ctx.close()


def test_no_keys_is_a_fail_with_the_pattern(
    make_lab: Callable[..., LabSpec], redis_client: Any, tmp_path: Path
) -> None:
    # Prefixes keyed by instance name work as well as by kind.
    ctx = _ctx(make_lab("", []), tmp_path, {"cache": REDIS_URL}, prefixes={"cache": REDIS_PREFIX})
    try:
        with pytest.raises(Fail) as failed:
            ctx.keys("missing:*").must_exist(why="Nothing was cached.")
        assert REDIS_PREFIX + "missing:*" in failed.value.evidence[0].title
    finally:
        ctx.close()


def test_keys_refuse_to_scan_without_a_prefix(
    make_lab: Callable[..., LabSpec], redis_client: Any, tmp_path: Path
) -> None:
    ctx = _ctx(make_lab("", []), tmp_path, {"redis": REDIS_URL})
    try:
        with pytest.raises(CannotCheck, match="prefix"):
            ctx.keys("*")
    finally:
        ctx.close()


# ------------------------------------------------------------------ RabbitMQ


@pytest.fixture
def broker() -> Iterator[Any]:
    """A channel on the machine's RabbitMQ; this module's queues and exchanges go after."""
    import pika

    try:
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    except Exception as exc:
        pytest.fail(f"The tests need RabbitMQ at {AMQP_URL} ({exc!r}).")
    channel = conn.channel()
    made: dict[str, list[str]] = {"queue": [], "exchange": []}
    channel.made = made  # type: ignore[attr-defined]
    yield channel
    cleanup = conn.channel()
    for queue in made["queue"]:
        cleanup.queue_delete(queue)
    for exchange in made["exchange"]:
        cleanup.exchange_delete(exchange)
    conn.close()


def test_queue_facts_by_passive_declare(
    make_lab: Callable[..., LabSpec], broker: Any, tmp_path: Path
) -> None:
    work = AMQP_PREFIX + "work"
    broker.made["queue"].append(work)
    broker.queue_declare(work, durable=True)
    broker.confirm_delivery()
    for body in (b"1", b"2"):
        broker.basic_publish("", work, body)
    ctx = _ctx(make_lab("", []), tmp_path, {"mq": AMQP_URL}, prefixes={"rabbitmq": AMQP_PREFIX})
    try:
        queue = ctx.queue("work")
        assert (queue.name, queue.exists, queue.messages, queue.consumers) == (work, True, 2, 0)
        broker.basic_consume(work, lambda *args: None)
        assert ctx.queue("work").consumers == 1
        missing = ctx.queue("nowhere")
        assert not missing.exists
        with pytest.raises(Fail) as failed:
            missing.must_exist(why="Declare the queue nowhere.")
        assert failed.value.message == "Declare the queue nowhere."
        assert "| no |" in failed.value.evidence[0].as_text()
    finally:
        ctx.close()


def test_queue_arguments_by_re_declaring(
    make_lab: Callable[..., LabSpec], broker: Any, tmp_path: Path
) -> None:
    orders, dlx = AMQP_PREFIX + "orders", AMQP_PREFIX + "dlx"
    broker.made["queue"].append(orders)
    broker.queue_declare(
        orders, durable=True, arguments={"x-dead-letter-exchange": dlx, "x-max-length": 1000}
    )
    ctx = _ctx(make_lab("", []), tmp_path, {"mq": AMQP_URL}, prefixes={"rabbitmq": AMQP_PREFIX})
    try:
        queue = ctx.queue("orders")
        # Asked only about the dead-letter exchange: x-max-length is adopted, not a mismatch.
        queue.must_be_declared_with(
            why="x", durable=True, arguments={"x-dead-letter-exchange": dlx}
        )
        found = queue.declaration()
        assert found.arguments == {"x-dead-letter-exchange": dlx, "x-max-length": 1000}
        assert found.flags["durable"] is True and not found.mismatches

        with pytest.raises(Fail) as wrong_dlx:
            queue.must_be_declared_with(
                why="Dead letters must go to orders.dead.",
                arguments={"x-dead-letter-exchange": AMQP_PREFIX + "orders.dead"},
            )
        text = wrong_dlx.value.evidence[0].as_text()
        assert wrong_dlx.value.message == "Dead letters must go to orders.dead."
        assert f"x-dead-letter-exchange is '{dlx}', expected" in text

        ttl = queue.declaration(arguments={"x-message-ttl": 5000}, durable=False)
        assert {(m.key, m.actual) for m in ttl.mismatches} == {
            ("x-message-ttl", None),
            ("durable", True),
        }
        # Re-declaring never changed the queue.
        assert queue.declaration().arguments == found.arguments
    finally:
        ctx.close()


def test_exchange_type_by_re_declaring(
    make_lab: Callable[..., LabSpec], broker: Any, tmp_path: Path
) -> None:
    events = AMQP_PREFIX + "events"
    broker.made["exchange"].append(events)
    broker.exchange_declare(events, exchange_type="topic", durable=False)
    ctx = _ctx(make_lab("", []), tmp_path, {"mq": AMQP_URL}, prefixes={"rabbitmq": AMQP_PREFIX})
    try:
        exchange = ctx.exchange("events")
        assert (exchange.exists, exchange.type, exchange.durable) == (True, "topic", False)
        assert exchange.must_be("topic", why="x") is exchange
        with pytest.raises(Fail) as failed:
            exchange.must_be("fanout", why="Use a fanout exchange.")
        assert "topic" in failed.value.evidence[0].as_text()
        assert not ctx.exchange("nowhere").exists
        assert ctx.exchange("amq.topic").type == "topic"
    finally:
        ctx.close()


def test_a_check_that_ignores_the_stop_is_left_behind(
    make_lab: Callable[..., LabSpec], tmp_path: Path
) -> None:
    # time.sleep in a thread cannot be interrupted: run_checks returns anyway.
    lab = make_lab(
        """
        import time

        @check("sleep")
        def sleep(ctx):
            time.sleep(6)
            return "woke up"
        """,
        ["sleep"],
    )
    results, took = _timed(lambda: run_checks(lab, tmp_path, {}, deadline=0.5))
    assert took < 5
    assert results[0].status == "timeout"


def test_checks_share_what_one_of_them_made_once(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    """ctx.once: made by the first check that asks, the same value (or the same Fail) for
    the others, and made afresh by the next `lab check`; ctx.on_close runs at the end."""
    made = tmp_path / "made.log"
    lab = make_lab(
        f"""
        from pathlib import Path

        def _make(name):
            with Path({str(made)!r}).open("a") as f:
                f.write(name + "\\n")
            if name == "broken":
                raise Fail("the learner's run broke")
            return [1, 2, 3]

        @check("first")
        def first(ctx):
            ctx.on_close(lambda: _make("closed"))
            return Pass(f"sum {{sum(ctx.once('run', lambda: _make('run')))}}")

        @check("second")
        def second(ctx):
            return Pass(f"len {{len(ctx.once('run', lambda: _make('run')))}}")

        @check("third")
        def third(ctx):
            ctx.once("bad", lambda: _make("broken"))
            return Pass("no")

        @check("fourth")
        def fourth(ctx):
            ctx.once("bad", lambda: _make("broken"))
            return Pass("no")
        """,
        ["first", "second", "third", "fourth"],
    )
    results = run_checks(lab, tmp_path, {"postgres": db})
    assert [(r.passed, r.message) for r in results] == [
        (True, "sum 6"),
        (True, "len 3"),
        (False, "the learner's run broke"),
        (False, "the learner's run broke"),
    ]
    assert made.read_text().split() == ["run", "broken", "closed"]
    run_checks(lab, tmp_path, {"postgres": db})
    assert made.read_text().split() == ["run", "broken", "closed"] * 2


def test_a_check_gives_learner_code_variables_of_its_own_but_never_the_runners(
    make_lab: Callable[..., LabSpec], db: str, tmp_path: Path
) -> None:
    (tmp_path / "peer.py").write_text(
        "import os\n\ndef where():\n    return os.environ.get('INVENTORY_URL')\n"
    )
    lab = make_lab(
        """
        @check("peer")
        def peer(ctx):
            run = ctx.run("peer.py", "where", env={"INVENTORY_URL": "http://127.0.0.1:9/"})
            return Pass(f"saw {run.value}")

        @check("takeover")
        def takeover(ctx):
            ctx.run("peer.py", "where", env={"DATABASE_URL": "postgresql://elsewhere/x"})
            return Pass("no")
        """,
        ["peer", "takeover"],
    )
    first, second = run_checks(lab, tmp_path, {"postgres": db})
    assert first.passed and first.message == "saw http://127.0.0.1:9/"
    assert not second.passed and "DATABASE_URL is set by the runner" in second.message
