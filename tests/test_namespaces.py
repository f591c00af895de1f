"""Namespaces per learner on shared servers: names carry the home id, markers are checked
before anything is dropped, and a lab's login reaches only its own things.

Runs against the machine's own PostgreSQL, Redis and RabbitMQ (the external provider's
servers), as a class would share them; every name here carries a test home's id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sdtutor.content.models import InstanceSpec, LabSpec
from sdtutor.errors import ProviderError
from sdtutor.services import Names, Target, kind
from sdtutor.services.names import home_id
from tests.conftest import SYSTEM_AMQP as AMQP
from tests.conftest import SYSTEM_REDIS as REDIS


def tiny_lab(tmp_path: Path, services: dict[str, str], **extra: object) -> LabSpec:
    """A lab with one table (PostgreSQL) and one key (Redis) to seed."""
    (tmp_path / "setup.sql").write_text(
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n"
        "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;\n"
    )
    (tmp_path / "seed.redis").write_text("# a greeting\nSET {prefix}greeting 'hello there'\n")
    setup = {name: "setup.sql" if k == "postgres" else "seed.redis" for name, k in services.items()}
    return LabSpec(
        path=tmp_path,
        topic="tinylab",
        title="A tiny lab",
        instances=tuple(InstanceSpec(n, k) for n, k in services.items()),
        setup={n: f for n, f in setup.items() if services[n] != "rabbitmq"},
        workspace=(),
        apply=(),
        checks=(),
        hints=(),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def names(home: Path) -> Names:
    return Names(home_id(), "tinylab")


@pytest.fixture
def pg_target(tmp_path: Path, names: Names, system_postgres: str) -> Iterator[Target]:
    target = Target(
        system_postgres, names, "postgres", tiny_lab(tmp_path, {"postgres": "postgres"})
    )
    yield target
    kind("postgres").teardown(target, purge=True)


def test_home_ids_differ_per_home_and_stay_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "a"))
    first = home_id()
    assert home_id() == first and len(first) == 8
    monkeypatch.setenv("SDTUTOR_HOME", str(tmp_path / "b"))
    assert home_id() != first
    assert Names(first, "indexing").database == f"sdtutor_{first}_indexing"


def test_postgres_lab_role_owns_a_private_copy_and_is_no_superuser(
    pg_target: Target, system_postgres: str
) -> None:
    names = pg_target.names
    access = kind("postgres").provision(pg_target, fresh=True)
    assert names.role in access.url and access.url.endswith("/" + names.database)
    with psycopg.connect(access.url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (50,)
        # The learner's role owns the tables (so it can index them) and nothing more.
        assert conn.execute(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'items'"
        ).fetchone() == (names.role,)
        flags = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert flags == (False, False, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY items TO PROGRAM 'id'")
    # Another learner's login cannot connect to this database.
    other = Names("0ther1d0", "tinylab")
    other_target = Target(system_postgres, other, "postgres", pg_target.lab)
    other_access = kind("postgres").provision(other_target, fresh=True)
    try:
        foreign = other_access.url.rsplit("/", 1)[0] + "/" + names.database
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(foreign, connect_timeout=3)
    finally:
        kind("postgres").teardown(other_target, purge=True)


def test_postgres_reset_copies_the_template_and_keeps_the_password(pg_target: Target) -> None:
    first = kind("postgres").provision(pg_target, fresh=True)
    with psycopg.connect(first.url, autocommit=True) as conn:
        conn.execute("DELETE FROM items")
    pg_target.handle["password"] = psycopg.conninfo.conninfo_to_dict(first.url)["password"]
    again = kind("postgres").provision(pg_target, fresh=True)
    assert again.url == first.url
    with psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (50,)


def test_a_copy_interrupted_before_its_marker_is_still_removed(
    pg_target: Target, system_postgres: str
) -> None:
    """CREATE DATABASE and the COMMENT that marks it cannot share a transaction: a copy
    cut off between them has no marker, but it is owned by this home's marked role, so
    a fresh copy and the teardown remove it rather than leave it behind."""
    names = pg_target.names
    kind("postgres").provision(pg_target, fresh=True)
    with psycopg.connect(system_postgres, autocommit=True) as conn:
        for dbname in (names.database, names.template):
            conn.execute(f'COMMENT ON DATABASE "{dbname}" IS NULL')
    kind("postgres").provision(pg_target, fresh=True)  # takes them over: no refusal
    with psycopg.connect(system_postgres, autocommit=True) as conn:
        conn.execute(f'COMMENT ON DATABASE "{names.database}" IS NULL')
    kind("postgres").teardown(pg_target, purge=True)
    with psycopg.connect(system_postgres, autocommit=True) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (names.database + "%",)
        ).fetchall()
        assert left == []
        role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (names.role,))
        assert role.fetchone() is None


def test_look_alike_databases_of_another_home_are_never_dropped(
    pg_target: Target, system_postgres: str
) -> None:
    names = pg_target.names
    with psycopg.connect(system_postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{names.database}"')
        conn.execute(f"COMMENT ON DATABASE \"{names.database}\" IS 'a learner made this by hand'")
    try:
        with pytest.raises(ProviderError, match="did not make it"):
            kind("postgres").provision(pg_target, fresh=True)
        with pytest.raises(ProviderError, match="did not make it"):
            kind("postgres").teardown(pg_target)
        with psycopg.connect(system_postgres) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (names.database,))
            assert row.fetchone() == (1,)
    finally:
        with psycopg.connect(system_postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{names.database}"')


def test_redis_user_reaches_only_its_prefix(tmp_path: Path, names: Names) -> None:
    import redis

    lab = tiny_lab(tmp_path, {"cache": "redis"})
    target = Target(REDIS, names, "cache", lab)
    admin = redis.Redis.from_url(REDIS, decode_responses=True)
    admin.set("sdtutor-test-outside", "keep me")
    try:
        access = kind("redis").provision(target, fresh=True)
        assert access.prefix == names.key_prefix and access.env["REDIS_KEY_PREFIX"] == access.prefix
        learner = redis.Redis.from_url(access.url, decode_responses=True)
        assert learner.get(names.key_prefix + "greeting") == "hello there"
        learner.set(names.key_prefix + "mine", "1", ex=60)
        with pytest.raises(redis.exceptions.NoPermissionError):
            learner.get("sdtutor-test-outside")
        with pytest.raises(redis.exceptions.NoPermissionError):
            learner.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            learner.delete(names.marker_key)
        # Scripts and functions are the server's, not the lab's: another learner's stay.
        assert learner.eval("return 1", 0) == 1
        for command in (("FUNCTION", "FLUSH"), ("SCRIPT", "FLUSH"), ("RANDOMKEY",)):
            with pytest.raises(redis.exceptions.NoPermissionError):
                learner.execute_command(*command)
        learner.close()
        kind("redis").teardown(target)
        assert not list(admin.scan_iter(match=names.key_prefix + "*"))
        assert admin.get("sdtutor-test-outside") == "keep me"
        assert names.role not in admin.acl_users()
    finally:
        admin.delete("sdtutor-test-outside")
        kind("redis").teardown(target)
        admin.close()


def test_rabbitmq_on_a_shared_vhost_keeps_to_the_prefix(tmp_path: Path, names: Names) -> None:
    import pika

    lab = tiny_lab(
        tmp_path,
        {"broker": "rabbitmq"},
        resources={"broker": {"queues": ["jobs"], "exchanges": ["ex"]}},
    )
    target = Target(AMQP, names, "broker", lab)
    access = kind("rabbitmq").provision(target, fresh=True)
    assert access.prefix == names.amqp_prefix and "vhost" in access.note
    conn = pika.BlockingConnection(pika.URLParameters(access.url))
    try:
        channel = conn.channel()
        channel.exchange_declare(access.prefix + "ex", "topic")
        channel.queue_declare(access.prefix + "jobs", durable=True)
        channel.queue_declare("sdtutor-test-outside.jobs")
        kind("rabbitmq").teardown(target)
        for gone in (access.prefix + "jobs",):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                conn.channel().queue_declare(gone, passive=True)
        # What the lab did not list is not its to delete.
        conn.channel().queue_declare("sdtutor-test-outside.jobs", passive=True)
    finally:
        conn.channel().queue_delete("sdtutor-test-outside.jobs")
        conn.close()


def test_redis_keys_of_another_home_are_never_deleted(tmp_path: Path, names: Names) -> None:
    import redis

    lab = tiny_lab(tmp_path, {"cache": "redis"})
    target = Target(REDIS, names, "cache", lab)
    admin = redis.Redis.from_url(REDIS, decode_responses=True)
    admin.set(names.marker_key, "a learner's own key")
    admin.set(names.key_prefix + "theirs", "keep")
    try:
        with pytest.raises(ProviderError, match="did not make it"):
            kind("redis").provision(target, fresh=True)
        with pytest.raises(ProviderError, match="did not make it"):
            kind("redis").teardown(target)
        assert admin.get(names.key_prefix + "theirs") == "keep"
    finally:
        admin.delete(names.marker_key, names.key_prefix + "theirs")
        admin.close()
