"""The docker provider: pure parts without an engine, the real thing where one answers."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from sdtutor.content.models import InstanceSpec
from sdtutor.errors import ProviderError
from sdtutor.providers import docker as dp
from sdtutor.providers.base import Endpoint
from sdtutor.providers.docker import DockerProvider

ROOT = Path(__file__).resolve().parents[1]
SPECIAL = "p@ss/w:rd?#%&= +"


@pytest.fixture(autouse=True)
def no_docker_config(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unit tests ignore this machine's Docker CLI config (its contexts choose an engine);
    the tests against a real engine keep it."""
    if request.node.get_closest_marker("docker") is None:
        config = tmp_path / "docker-config"
        config.mkdir()
        # An empty config.json, or the SDK falls back to ~/.docker/config.json.
        (config / "config.json").write_text("{}")
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        monkeypatch.delenv("DOCKER_CONTEXT", raising=False)


# -- container specs ------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(dp.IMAGES))
def test_spec_publishes_on_loopback_only_with_ephemeral_ports(service: str) -> None:
    spec = dp.container_spec("07-indexing", service, "pw-" + "x" * 20)
    assert spec["ports"], "every service publishes at least one port"
    for container_port, binding in spec["ports"].items():
        assert container_port.endswith("/tcp")
        assert binding == ("127.0.0.1", None)
    assert spec["detach"] is True


@pytest.mark.parametrize("service", sorted(dp.IMAGES))
def test_spec_carries_the_three_labels_and_its_name(service: str) -> None:
    spec = dp.container_spec("07-indexing", service, "secret-password-123")
    assert spec["labels"] == {
        "sdtutor": "1",
        "sdtutor.lab": "07-indexing",
        "sdtutor.service": service,
    }
    assert spec["name"] == f"sdtutor-07-indexing-{service}"


@pytest.mark.parametrize("service", sorted(dp.IMAGES))
def test_spec_uses_a_pinned_image_with_an_exact_version(service: str) -> None:
    image = dp.container_spec("lab", service, "secret-password-123")["image"]
    repo, tag = dp.split_image(image)
    assert repo == service, "official image of the same name"
    assert "latest" not in tag
    assert re.fullmatch(r"\d+(\.\d+)+(-[a-z]+)*", tag), f"exact version tag, got {tag}"


def test_specs_carry_the_password_where_each_image_reads_it() -> None:
    pw = "secret-password-123"
    postgres = dp.container_spec("lab", "postgres", pw)
    assert postgres["environment"] == {"POSTGRES_PASSWORD": pw}
    assert postgres["command"] == ["postgres"]
    rabbit = dp.container_spec("lab", "rabbitmq", pw)
    assert rabbit["environment"] == {
        "RABBITMQ_DEFAULT_USER": "sdtutor",
        "RABBITMQ_DEFAULT_PASS": pw,
    }
    assert "15672/tcp" in rabbit["ports"] and "5672/tcp" in rabbit["ports"]
    redis = dp.container_spec("lab", "redis", pw)
    assert redis["environment"] == {"REDIS_PASSWORD": pw}
    # Scratch space: no snapshots, no append-only file.
    assert redis["command"][-4:] == ["--save", "", "--appendonly", "no"]


def test_passwords_are_random_and_long_enough() -> None:
    first, second = dp.new_password(), dp.new_password()
    assert first != second
    assert len(first) >= 16 and len(second) >= 16


def test_specs_refuse_unknown_services_and_bad_lab_names() -> None:
    with pytest.raises(ProviderError):
        dp.container_spec("lab", "mysql", "pw")
    for bad in ("", "has space", "a=b", "-leading", "a,b", "x/y"):
        with pytest.raises(ProviderError):
            dp.container_spec(bad, "redis", "pw")


def test_provider_capabilities() -> None:
    assert DockerProvider.name == "docker"
    assert DockerProvider.services == frozenset({"postgres", "redis", "rabbitmq"})
    assert DockerProvider.replicas is True
    assert DockerProvider.restarts_servers is True
    assert DockerProvider.description


# -- URLs -----------------------------------------------------------------------------------


def test_endpoint_urls() -> None:
    assert (
        dp.endpoint_url("postgres", "pw", 5555)
        == "postgresql://postgres:pw@127.0.0.1:5555/postgres"
    )
    assert dp.endpoint_url("redis", "pw", 6666) == "redis://:pw@127.0.0.1:6666/0"
    assert dp.endpoint_url("rabbitmq", "pw", 7777) == "amqp://sdtutor:pw@127.0.0.1:7777/%2F"


@pytest.mark.parametrize("service", sorted(dp.IMAGES))
def test_endpoint_url_quotes_the_password(service: str) -> None:
    url = dp.endpoint_url(service, SPECIAL, 1234)
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port == 1234
    assert unquote(parts.password or "") == SPECIAL


def test_clients_read_the_quoted_password_back() -> None:
    from psycopg.conninfo import conninfo_to_dict

    assert conninfo_to_dict(dp.endpoint_url("postgres", SPECIAL, 1))["password"] == SPECIAL
    redis_connection = pytest.importorskip("redis.connection")
    assert redis_connection.parse_url(dp.endpoint_url("redis", SPECIAL, 1))["password"] == SPECIAL
    pika = pytest.importorskip("pika")
    params = pika.URLParameters(dp.endpoint_url("rabbitmq", SPECIAL, 1))
    assert params.credentials.password == SPECIAL
    assert params.virtual_host == "/"


# -- pull progress --------------------------------------------------------------------------


def test_pull_fraction_arithmetic() -> None:
    assert dp.pull_fraction({}) is None
    assert dp.pull_fraction({"a": (0, 0)}) is None
    assert dp.pull_fraction({"a": (50, 100), "b": (0, 300)}) == pytest.approx(50 / 400)
    assert dp.pull_fraction({"a": (100, 100), "b": (300, 300)}) == 1.0
    # Over-reporting never exceeds 1; layers without a size are ignored.
    assert dp.pull_fraction({"a": (150, 100), "b": (7, 0)}) == 1.0


def test_update_layers_follows_pull_events() -> None:
    layers: dict[str, tuple[int, int]] = {}
    events: list[dict[str, Any]] = [
        {"status": "Pulling from library/redis", "id": "7.2.6-alpine"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "a"},
        {"status": "Already exists", "progressDetail": {}, "id": "c"},
        {"status": "Downloading", "progressDetail": {"current": 10, "total": 100}, "id": "a"},
        {"status": "Downloading", "progressDetail": {"current": 0, "total": 300}, "id": "b"},
    ]
    for event in events:
        dp.update_layers(layers, event)
    assert layers == {"a": (10, 100), "b": (0, 300)}
    assert dp.pull_fraction(layers) == pytest.approx(10 / 400)
    dp.update_layers(layers, {"status": "Download complete", "progressDetail": {}, "id": "a"})
    dp.update_layers(layers, {"status": "Pull complete", "progressDetail": {}, "id": "b"})
    assert dp.pull_fraction(layers) == 1.0


# -- other pure parts -----------------------------------------------------------------------


def test_host_port_reads_only_the_loopback_binding() -> None:
    ports = {"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}
    assert dp.host_port(ports, "5432/tcp") == 49153
    assert dp.host_port({"5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "1"}]}, "5432/tcp") is None
    assert dp.host_port({"5432/tcp": None}, "5432/tcp") is None
    assert dp.host_port({}, "5432/tcp") is None
    assert dp.host_port(None, "5432/tcp") is None


def _attrs_for(spec: dict[str, Any]) -> dict[str, Any]:
    """What `docker inspect` reports for a container made from `spec`."""
    image_cmd = ["postgres"] if spec["image"].startswith("postgres") else ["docker-entrypoint.sh"]
    return {
        "Config": {
            "Image": spec["image"],
            "Env": [f"{k}={v}" for k, v in spec["environment"].items()] + ["PATH=/usr/bin"],
            "Cmd": spec["command"] or image_cmd,
            "Entrypoint": spec.get("entrypoint") or ["docker-entrypoint.sh"],
            "User": spec.get("user", ""),
        },
        "HostConfig": {
            "NetworkMode": spec.get("network") or "default",
            "PortBindings": {
                port: [{"HostIp": ip, "HostPort": ""}] for port, (ip, _) in spec["ports"].items()
            },
        },
    }


@pytest.mark.parametrize("service", sorted(dp.IMAGES))
def test_reusable_password_recovers_the_password_of_a_matching_container(service: str) -> None:
    attrs = _attrs_for(dp.container_spec("lab", service, "the-password-42"))
    assert dp.reusable_password(service, attrs) == "the-password-42"


def test_reusable_password_refuses_other_images_and_wider_bindings() -> None:
    attrs = _attrs_for(dp.container_spec("lab", "postgres", "pw"))
    attrs["Config"]["Image"] = "postgres:latest"
    assert dp.reusable_password("postgres", attrs) is None
    attrs = _attrs_for(dp.container_spec("lab", "postgres", "pw"))
    attrs["HostConfig"]["PortBindings"]["5432/tcp"][0]["HostIp"] = "0.0.0.0"
    assert dp.reusable_password("postgres", attrs) is None


def test_tail_lines_keeps_the_last_lines() -> None:
    raw = "".join(f"line {i}\n" for i in range(30)).encode() + b"\xff bad byte\n"
    tail = dp.tail_lines(raw, limit=10).splitlines()
    assert len(tail) == 10
    assert tail[0] == "line 21" and tail[-1].endswith("bad byte")


def test_redis_probe_bytes_are_resp() -> None:
    assert dp.redis_probe_bytes("pw") == b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$4\r\nPING\r\n"


def _serve_once(reply: bytes) -> tuple[int, threading.Thread]:
    """A one-connection TCP server on loopback that answers with `reply`."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)

    def run() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(reply)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def test_redis_socket_fallback_wants_ok_and_pong() -> None:
    port, thread = _serve_once(b"+OK\r\n+PONG\r\n")
    assert dp._probe_redis_socket(dp.endpoint_url("redis", "pw", port))
    thread.join(5)
    port, thread = _serve_once(b"-WRONGPASS invalid password\r\n+PONG\r\n")
    assert not dp._probe_redis_socket(dp.endpoint_url("redis", "pw", port))
    thread.join(5)


def test_amqp_probe_wants_a_method_frame() -> None:
    port, thread = _serve_once(b"\x01\x00\x00")
    assert dp._amqp_answers("127.0.0.1", port)
    thread.join(5)
    # Docker's port proxy accepts, then hangs up while the broker is not listening yet.
    port, thread = _serve_once(b"")
    assert not dp._amqp_answers("127.0.0.1", port)
    thread.join(5)


# -- where ports are published --------------------------------------------------------------


@pytest.mark.parametrize(
    ("docker_host", "expected"),
    [
        ("unix:///var/run/docker.sock", ("127.0.0.1", "127.0.0.1")),
        ("unix:///run/user/1000/docker.sock", ("127.0.0.1", "127.0.0.1")),  # rootless
        ("npipe:////./pipe/docker_engine", ("127.0.0.1", "127.0.0.1")),
        ("http+unix:///var/run/docker.sock", ("127.0.0.1", "127.0.0.1")),
        ("tcp://127.0.0.1:2375", ("127.0.0.1", "127.0.0.1")),
        ("tcp://127.0.0.53:2375", ("127.0.0.1", "127.0.0.1")),
        ("tcp://localhost:2376", ("127.0.0.1", "127.0.0.1")),
        ("tcp://LOCALHOST:2376", ("127.0.0.1", "127.0.0.1")),
        ("tcp://[::1]:2375", ("127.0.0.1", "127.0.0.1")),
        ("tcp://:2375", ("127.0.0.1", "127.0.0.1")),  # the SDK reads no host as 127.0.0.1
        ("tcp://0.0.0.0:2375", ("127.0.0.1", "127.0.0.1")),
        ("ssh://me@localhost", ("127.0.0.1", "127.0.0.1")),
        ("tcp://class-engine.example.edu:2376", ("0.0.0.0", "class-engine.example.edu")),
        ("tcp://10.1.2.3:2376", ("0.0.0.0", "10.1.2.3")),
        ("https://class-engine:2376", ("0.0.0.0", "class-engine")),
        ("class-engine:2375", ("0.0.0.0", "class-engine")),  # no scheme: the SDK means tcp
        ("ssh://teacher@class-engine", ("0.0.0.0", "class-engine")),
        ("ssh://teacher@class-engine:2222", ("0.0.0.0", "class-engine")),
        ("tcp://[2001:db8::7]:2376", ("::", "[2001:db8::7]")),
    ],
)
def test_publish_address_for_each_docker_host_form(
    docker_host: str, expected: tuple[str, str]
) -> None:
    assert dp.publish_address(docker_host) == expected


def test_publish_address_reads_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert dp.publish_address() == ("127.0.0.1", "127.0.0.1")
    monkeypatch.setenv("DOCKER_HOST", "ssh://teacher@class-engine")
    assert dp.publish_address() == ("0.0.0.0", "class-engine")


def _docker_context(config: Path, name: str, host: str) -> None:
    """A Docker CLI config folder whose current context `name` points at `host`."""
    import hashlib
    import json

    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    endpoint = {"Host": host, "SkipTLSVerify": False}
    document = {"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}}
    (meta / "meta.json").write_text(json.dumps(document))
    (config / "config.json").write_text(json.dumps({"currentContext": name}))


def test_a_docker_context_naming_a_remote_engine_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docker.context import ContextAPI

    if not hasattr(ContextAPI, "kwargs_from_context"):
        pytest.skip("this docker SDK ignores contexts in from_env")
    config = tmp_path / "classroom-config"
    config.mkdir()
    _docker_context(config, "classroom", "tcp://class-engine:2376")
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert dp.engine_address() == "tcp://class-engine:2376"
    assert dp.publish_address() == ("0.0.0.0", "class-engine")
    # DOCKER_HOST wins over the context, as it does for the SDK.
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert dp.publish_address() == ("127.0.0.1", "127.0.0.1")
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert dp.publish_address() == ("127.0.0.1", "127.0.0.1")


def test_an_ssh_engine_without_paramiko_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    if importlib.util.find_spec("paramiko") is not None:
        pytest.skip("paramiko is installed here")
    monkeypatch.setenv("DOCKER_HOST", "ssh://teacher@192.0.2.1")
    available = DockerProvider.availability()
    assert not available.ok
    assert "pip install paramiko" in available.fix


@pytest.mark.parametrize("service", sorted(dp.IMAGES))
def test_remote_specs_publish_on_the_engines_addresses(service: str) -> None:
    spec = dp.container_spec("lab", service, "pw-123", bind_ip="0.0.0.0")
    assert set(spec["ports"].values()) == {("0.0.0.0", None)}
    url = dp.endpoint_url(service, "pw-123", 40001, "class-engine")
    assert urlsplit(url).hostname == "class-engine" and urlsplit(url).port == 40001
    v6 = urlsplit(dp.endpoint_url(service, "pw-123", 40001, "[2001:db8::7]"))
    assert v6.hostname == "2001:db8::7" and v6.port == 40001


def test_host_port_reads_the_binding_of_the_publish_address() -> None:
    ports = {
        "5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40001"}],
        "15672/tcp": [{"HostIp": "::", "HostPort": "40002"}],
    }
    assert dp.host_port(ports, "5432/tcp", "0.0.0.0") == 40001
    assert dp.host_port(ports, "5432/tcp") is None
    assert dp.host_port(ports, "15672/tcp", "::") == 40002


@pytest.mark.parametrize("service", sorted(dp.IMAGES))
def test_reusable_password_follows_the_publish_address(service: str) -> None:
    remote = _attrs_for(dp.container_spec("lab", service, "pw-42", bind_ip="0.0.0.0"))
    assert dp.reusable_password(service, remote, "0.0.0.0") == "pw-42"
    # A container made for a local engine is not handed out on a remote one, and back.
    assert dp.reusable_password(service, remote) is None
    local = _attrs_for(dp.container_spec("lab", service, "pw-42"))
    assert dp.reusable_password(service, local, "0.0.0.0") is None


# -- settings, replicas and passwords -------------------------------------------------------


def test_lab_settings_go_to_the_server_command() -> None:
    spec = dp.container_spec(
        "lab", "postgres", "pw", "main", settings={"max_prepared_transactions": "10"}
    )
    assert spec["command"] == ["postgres", "-c", "max_prepared_transactions=10"]
    redis = dp.container_spec("lab", "redis", "pw", settings={"maxmemory-policy": "allkeys-lru"})
    assert redis["command"][-2:] == ["--maxmemory-policy", "allkeys-lru"]
    with pytest.raises(ProviderError, match="RabbitMQ"):
        dp.container_spec("lab", "rabbitmq", "pw", settings={"x": "1"})
    for bad in ({"a b": "1"}, {"-c": "1"}, {"work_mem": "1\nfsync=off"}):
        with pytest.raises(ProviderError, match="cannot be passed"):
            dp.container_spec("lab", "postgres", "pw", settings=bad)


def _primary_and_replica() -> tuple[dict[str, Any], dict[str, Any]]:
    primary = dp.container_spec(
        "home1-lab1",
        "postgres",
        "super-secret-pw",
        "primary",
        "home1",
        settings={"max_prepared_transactions": "10"},
        replication_password="replication-secret-pw",
        network="sdtutor-home1-lab1",
    )
    replica = dp.replica_spec(
        "home1-lab1",
        "replica",
        "primary",
        "super-secret-pw",
        "replication-secret-pw",
        network="sdtutor-home1-lab1",
        home="home1",
        primary_settings={"max_prepared_transactions": "10"},
        settings={"recovery_min_apply_delay_ms": "250"},
    )
    return primary, replica


def _settings(args: list[str]) -> dict[str, str]:
    """`-c name=value` pairs as a dict."""
    assert args[::2] == ["-c"] * (len(args) // 2)
    return dict(arg.split("=", 1) for arg in args[1::2])


def test_a_primary_streams_wal_and_keeps_its_lab_settings() -> None:
    primary, _ = _primary_and_replica()
    assert primary["command"][0] == "postgres"
    settings = _settings(primary["command"][1:])
    assert settings["wal_level"] == "replica"
    assert int(settings["max_wal_senders"]) >= 2
    assert settings["max_prepared_transactions"] == "10"
    assert primary["environment"] == {
        "POSTGRES_PASSWORD": "super-secret-pw",
        "SDTUTOR_REPLICATION_PASSWORD": "replication-secret-pw",
    }
    assert primary["network"] == "sdtutor-home1-lab1"


def test_a_replica_copies_its_primary_over_the_lab_network() -> None:
    primary, replica = _primary_and_replica()
    assert replica["image"] == primary["image"]
    assert replica["name"] == "sdtutor-home1-lab1-replica"
    assert replica["labels"] == dp.labels_for("home1-lab1", "postgres", "home1")
    assert replica["network"] == primary["network"]
    assert replica["user"] == "postgres"
    assert replica["entrypoint"][:2] == ["sh", "-c"]
    assert "pg_basebackup" in replica["entrypoint"][2]
    env = replica["environment"]
    assert env["SDTUTOR_PRIMARY_HOST"] == primary["name"]
    assert env["SDTUTOR_REPLICATION_PASSWORD"] == "replication-secret-pw"
    settings = _settings(replica["command"])
    assert settings["hot_standby"] == "on"
    assert settings["recovery_min_apply_delay"] == "250ms"
    # A hot standby needs at least its primary's max_prepared_transactions.
    assert settings["max_prepared_transactions"] == "10"
    conninfo = dict(item.split("=", 1) for item in settings["primary_conninfo"].split())
    assert conninfo == {
        "host": primary["name"],
        "port": "5432",
        "user": dp.REPLICATION_ROLE,
        "passfile": env["PGPASSFILE"],
        "application_name": "replica",
    }
    assert "recovery_min_apply_delay_ms" not in settings


def test_no_password_is_on_any_containers_command_line() -> None:
    primary, replica = _primary_and_replica()
    specs = [primary, replica] + [dp.container_spec("lab", s, "super-secret-pw") for s in dp.IMAGES]
    for spec in specs:
        argv = " ".join((spec.get("entrypoint") or []) + (spec["command"] or []))
        assert "super-secret-pw" not in argv, spec["name"]
        assert "replication-secret-pw" not in argv, spec["name"]
    assert b"secret" not in dp.init_archive()


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ((InstanceSpec("replica", "postgres", "nowhere"),), "not another instance"),
        ((InstanceSpec("replica", "postgres", "replica"),), "not another instance"),
        (
            (InstanceSpec("cache", "redis"), InstanceSpec("copy", "redis", "cache")),
            "PostgreSQL only",
        ),
        (
            (InstanceSpec("cache", "redis"), InstanceSpec("replica", "postgres", "cache")),
            "not a PostgreSQL primary",
        ),
        (
            (
                InstanceSpec("primary", "postgres"),
                InstanceSpec("r1", "postgres", "primary"),
                InstanceSpec("r2", "postgres", "r1"),
            ),
            "does not chain",
        ),
        (
            (
                InstanceSpec("primary", "postgres"),
                InstanceSpec(
                    "replica", "postgres", "primary", {"recovery_min_apply_delay_ms": "soon"}
                ),
            ),
            "whole number of milliseconds",
        ),
        (
            (InstanceSpec("primary", "postgres", None, {"recovery_min_apply_delay_ms": "5"}),),
            "only a replica",
        ),
        ((InstanceSpec("db", "mysql"),), "mysql"),
        ((InstanceSpec("bad name", "postgres"),), "container name"),
    ],
)
def test_check_instances_refuses_what_docker_cannot_give(
    instances: tuple[InstanceSpec, ...], message: str
) -> None:
    with pytest.raises(ProviderError, match=message):
        dp.check_instances(instances)


def test_spec_matches_notices_changed_settings_passwords_and_networks() -> None:
    primary, replica = _primary_and_replica()
    assert dp.spec_matches(primary, _attrs_for(primary))
    assert dp.spec_matches(replica, _attrs_for(replica))
    changed = dict(primary, command=["postgres", "-c", "max_prepared_transactions=20"])
    assert not dp.spec_matches(changed, _attrs_for(primary))
    new_primary = dict(replica, environment={**replica["environment"], "POSTGRES_PASSWORD": "x"})
    assert not dp.spec_matches(new_primary, _attrs_for(replica))
    plain = dp.container_spec("home1-lab1", "postgres", "super-secret-pw", "primary", "home1")
    assert not dp.spec_matches(plain, _attrs_for(primary))
    assert not dp.spec_matches(replica, _attrs_for(primary))


# -- the scripts that run inside the containers, with stand-in programs --------------------


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _sh(
    script: str, args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script, "sdtutor-test", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_redis_command_hands_the_password_over_in_a_private_file(tmp_path: Path) -> None:
    stubs, out = tmp_path / "bin", tmp_path / "out"
    stubs.mkdir()
    out.mkdir()
    conf = tmp_path / "data" / "sdtutor-redis.conf"
    conf.parent.mkdir()
    _stub(
        stubs,
        "docker-entrypoint.sh",
        f'printf "%s\\n" "$@" > {out}/args\nenv > {out}/env\n'
        f'stat -c %a "$2" > {out}/mode\ncat "$2" > {out}/conf\n',
    )
    spec = dp.container_spec("lab", "redis", "super-secret-pw", settings={"maxmemory": "64mb"})
    assert spec["command"][:2] == ["sh", "-c"]
    script = spec["command"][2].replace(dp.REDIS_CONF, str(conf))
    env = {"PATH": f"{stubs}:/usr/bin:/bin", **spec["environment"]}
    result = _sh(script, spec["command"][4:], env, tmp_path)
    assert result.returncode == 0, result.stderr
    args = (out / "args").read_text().splitlines()
    assert args == [
        "redis-server",
        str(conf),
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        "64mb",
    ]
    assert (out / "conf").read_text() == "requirepass super-secret-pw\n"
    assert (out / "mode").read_text().strip() == "600"
    assert "super-secret-pw" not in (out / "env").read_text()


def _replica_env(tmp_path: Path, stubs: Path, replica: dict[str, Any]) -> dict[str, str]:
    return {
        **replica["environment"],
        "PATH": f"{stubs}:/usr/bin:/bin",
        "PGDATA": str(tmp_path / "data"),
        "PGPASSFILE": str(tmp_path / "pgpass"),
    }


def test_the_replica_waits_for_its_primary_copies_it_once_and_runs_a_standby(
    tmp_path: Path,
) -> None:
    stubs, out = tmp_path / "bin", tmp_path / "out"
    for folder in (stubs, out, tmp_path / "data"):
        folder.mkdir()
    _stub(stubs, "sleep", f"echo slept >> {out}/log\n")
    # The primary answers on the third try.
    _stub(
        stubs,
        "pg_isready",
        f'echo "isready $*" >> {out}/log\n'
        f"n=$(cat {out}/tries 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {out}/tries\n"
        '[ "$n" -ge 3 ]\n',
    )
    _stub(
        stubs,
        "pg_basebackup",
        f'echo "basebackup $*" >> {out}/log\n'
        f'stat -c %a "$PGPASSFILE" > {out}/passfile-mode\ncat "$PGPASSFILE" > {out}/passfile\n'
        'echo 15 > "$2/PG_VERSION"\n',
    )
    _stub(
        stubs,
        "postgres",
        f'printf "%s\\n" "$@" > {out}/postgres-args\nenv > {out}/postgres-env\n'
        f'stat -c %a "$PGDATA" > {out}/datadir-mode\n',
    )
    _, replica = _primary_and_replica()
    script = replica["entrypoint"][2]
    env = _replica_env(tmp_path, stubs, replica)
    (tmp_path / "data").chmod(0o777)
    result = _sh(script, replica["command"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    log = (out / "log").read_text().splitlines()
    assert [line.split()[0] for line in log] == [
        "isready",
        "slept",
        "isready",
        "slept",
        "isready",
        "basebackup",
    ]
    assert "-h sdtutor-home1-lab1-primary -p 5432" in log[0]
    backup = log[-1].split()
    assert backup[backup.index("-D") + 1] == env["PGDATA"]
    assert backup[backup.index("-U") + 1] == dp.REPLICATION_ROLE
    assert "-w" in backup, "never prompts: the password comes from PGPASSFILE"
    assert (out / "passfile").read_text() == f"*:*:*:{dp.REPLICATION_ROLE}:replication-secret-pw\n"
    assert (out / "passfile-mode").read_text().strip() == "600"
    assert (tmp_path / "data" / "standby.signal").exists()
    assert (out / "datadir-mode").read_text().strip() == "700"
    assert (out / "postgres-args").read_text().splitlines() == replica["command"]
    server_env = (out / "postgres-env").read_text()
    assert "secret-pw" not in server_env, "the server's environment holds no password"

    # A restart starts the standby again without copying anything.
    (out / "log").unlink()
    result = _sh(script, replica["command"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (out / "log").exists()

    # A copy that never finished is thrown away and made again.
    (tmp_path / "data" / "sdtutor.copied").unlink()
    (tmp_path / "data" / "half-copied").write_text("x")
    result = _sh(script, replica["command"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "basebackup" in (out / "log").read_text()
    assert not (tmp_path / "data" / "half-copied").exists()


def test_a_failed_copy_stops_the_replica(tmp_path: Path) -> None:
    stubs = tmp_path / "bin"
    for folder in (stubs, tmp_path / "data"):
        folder.mkdir()
    _stub(stubs, "pg_isready", "exit 0\n")
    _stub(stubs, "pg_basebackup", 'echo "FATAL: no pg_hba.conf entry" >&2; exit 1\n')
    _stub(stubs, "postgres", f"touch {tmp_path}/started\n")
    _, replica = _primary_and_replica()
    result = _sh(
        replica["entrypoint"][2],
        replica["command"],
        _replica_env(tmp_path, stubs, replica),
        tmp_path,
    )
    assert result.returncode != 0
    assert "no pg_hba.conf entry" in result.stderr
    assert not (tmp_path / "started").exists()


def test_the_primary_init_script_makes_the_role_from_the_environment(tmp_path: Path) -> None:
    stubs, out = tmp_path / "bin", tmp_path / "out"
    for folder in (stubs, out, tmp_path / "data"):
        folder.mkdir()
    (tmp_path / "data" / "pg_hba.conf").write_text("host all all all scram-sha-256\n")
    _stub(stubs, "psql", f'printf "%s\\n" "$@" > {out}/args\ncat > {out}/stdin\n')
    with tarfile.open(fileobj=io.BytesIO(dp.init_archive())) as tar:
        [member] = tar.getmembers()
        assert member.name == "sdtutor-replication.sh" and member.mode == 0o644
        extracted = tar.extractfile(member)
        assert extracted is not None
        script = extracted.read().decode()
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "PGDATA": str(tmp_path / "data"),
        "POSTGRES_USER": "postgres",
        "SDTUTOR_REPLICATION_PASSWORD": "replication-secret-pw",
    }
    result = _sh(script, [], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "replication-secret-pw" not in (out / "args").read_text()
    stdin = (out / "stdin").read_text()
    assert "\\getenv sdtutor_password SDTUTOR_REPLICATION_PASSWORD" in stdin
    assert (
        f"CREATE ROLE {dp.REPLICATION_ROLE} WITH REPLICATION LOGIN PASSWORD :'sdtutor_password';"
        in stdin
    )
    hba = (tmp_path / "data" / "pg_hba.conf").read_text().splitlines()
    assert hba[-1] == f"host replication {dp.REPLICATION_ROLE} samenet scram-sha-256"


# -- availability and import hygiene --------------------------------------------------------


def test_availability_without_an_engine_is_quick_and_helpful(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    began = time.monotonic()
    available = DockerProvider.availability()
    assert time.monotonic() - began < 5
    assert available.ok is False
    assert "127.0.0.1:9" in available.detail
    assert "DOCKER_HOST" in available.fix and "--provider local" in available.fix
    assert available.services == ()


def test_importing_the_provider_does_not_import_docker() -> None:
    code = (
        "import sys, sdtutor.providers.docker\n"
        "heavy = [m for m in ('docker', 'psycopg', 'redis', 'pika') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# -- start/stop against a fake engine -------------------------------------------------------


class FakeContainer:
    def __init__(self, engine: FakeEngine, spec: dict[str, Any]) -> None:
        self.engine = engine
        self.spec = spec
        self.name: str = spec["name"]
        self.id = "id-" + self.name
        self.labels: dict[str, str] = dict(spec["labels"])
        self.status = "created"
        self.attrs = _attrs_for(spec)
        self.ports: dict[str, Any] = {}
        self.bindings = dict(spec["ports"])
        self.archives: list[tuple[str, bytes]] = []

    def start(self) -> None:
        network = self.spec.get("network")
        if network and network not in self.engine.networks.by_name:
            import docker.errors

            raise docker.errors.APIError(f"network {network} not found")
        self.engine.events.append(("start", self.name))
        self.status = "running"
        self.ports = {}
        for port, (ip, _) in self.bindings.items():
            self.engine.next_port += 1
            self.ports[port] = [{"HostIp": ip, "HostPort": str(self.engine.next_port)}]

    def put_archive(self, path: str, data: bytes) -> bool:
        assert self.status == "created", "init files go in before the first start"
        self.archives.append((path, data))
        return True

    def reload(self) -> None:
        pass

    def logs(self, tail: int = 10) -> bytes:
        return b"starting\nFATAL: something went wrong\n"

    def remove(self, force: bool = False, v: bool = False) -> None:
        assert force and v
        del self.engine.by_name[self.name]
        self.engine.removed.append(self.name)


class FakeNetwork:
    def __init__(self, networks: FakeNetworks, name: str, labels: dict[str, str]) -> None:
        self.networks = networks
        self.name = name
        self.attrs: dict[str, Any] = {"Name": name, "Labels": dict(labels), "Driver": "bridge"}

    def remove(self) -> None:
        attached = [
            c.name
            for c in self.networks.engine.by_name.values()
            if c.spec.get("network") == self.name
        ]
        if attached:
            import docker.errors

            raise docker.errors.APIError(f"network {self.name} has active endpoints")
        del self.networks.by_name[self.name]
        self.networks.removed.append(self.name)


class FakeNetworks:
    """Just enough of client.networks."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.by_name: dict[str, FakeNetwork] = {}
        self.removed: list[str] = []

    def get(self, name: str) -> FakeNetwork:
        import docker.errors

        if name in self.by_name:
            return self.by_name[name]
        raise docker.errors.NotFound(name)

    def create(
        self, name: str, driver: str = "bridge", labels: dict[str, str] | None = None
    ) -> FakeNetwork:
        assert name not in self.by_name
        self.engine.events.append(("network", name))
        network = FakeNetwork(self, name, labels or {})
        self.by_name[name] = network
        return network

    def list(self, filters: dict[str, Any] | None = None) -> list[FakeNetwork]:
        wanted = [item.split("=", 1) for item in (filters or {}).get("label", [])]
        return [n for n in self.by_name.values() if all_match(n.attrs["Labels"], wanted)]


class FakeEngine:
    """Just enough of docker.DockerClient for DockerProvider.start/stop."""

    def __init__(self, has_images: bool = True) -> None:
        self.by_name: dict[str, FakeContainer] = {}
        self.removed: list[str] = []
        self.events: list[tuple[str, Any]] = []
        self.next_port = 40000
        self.has_images = has_images
        self.pulled: list[tuple[str, str]] = []
        self.containers = self
        self.images = self
        self.api = self
        self.networks = FakeNetworks(self)

    # containers
    def get(self, name: str) -> Any:
        import docker.errors

        if name in self.by_name:
            return self.by_name[name]
        if ":" in name:  # images.get
            if self.has_images:
                return object()
            raise docker.errors.ImageNotFound(name)
        raise docker.errors.NotFound(name)

    def create(self, **spec: Any) -> FakeContainer:
        assert spec["name"] not in self.by_name
        self.events.append(("create", spec["name"]))
        container = FakeContainer(self, spec)
        self.by_name[container.name] = container
        return container

    def list(
        self, all: bool = False, filters: dict[str, Any] | None = None, ignore_removed: bool = False
    ) -> list[FakeContainer]:
        wanted = [item.split("=", 1) for item in (filters or {}).get("label", [])]
        return [
            c
            for c in self.by_name.values()
            if (all or c.status == "running") and all_match(c.labels, wanted)
        ]

    def owner_of_port(self, port: int | None) -> str:
        """The container that published host port `port`."""
        for container in self.by_name.values():
            for bindings in container.ports.values():
                if any(b["HostPort"] == str(port) for b in bindings):
                    return container.name
        return "?"

    # api
    def pull(self, repo: str, tag: str, stream: bool, decode: bool) -> Iterator[dict[str, Any]]:
        self.pulled.append((repo, tag))
        for current in (0, 50, 100):
            yield {"status": "Downloading", "progressDetail": {"current": current, "total": 100}}
            yield {
                "status": "Downloading",
                "progressDetail": {"current": current, "total": 100},
                "id": "layer1",
            }
        yield {"status": "Pull complete", "progressDetail": {}, "id": "layer1"}


def kinds(*names: str) -> tuple[InstanceSpec, ...]:
    """A lab's instances, each named after its kind (the list form of lab.yaml)."""
    return tuple(InstanceSpec(name, name) for name in names)


def all_match(labels: dict[str, str], wanted: list[list[str]]) -> bool:
    return all(labels.get(key) == value for key, value in wanted)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> tuple[DockerProvider, FakeEngine]:
    engine = FakeEngine()
    provider = DockerProvider()
    monkeypatch.setattr(provider, "_connect", lambda: engine)
    # One home id, so container names stay readable here (real names carry the home's id).
    monkeypatch.setattr(dp, "lab_home", lambda lab: ("home1", lab))
    monkeypatch.setattr("sdtutor.services.names.home_id", lambda: "home1")
    monkeypatch.setattr(dp.time, "sleep", lambda seconds: None)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return provider, engine


def test_start_creates_labelled_containers_and_returns_urls(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    probes: list[str] = []

    def answer(service: str, url: str) -> bool:
        probes.append(service)
        return True

    monkeypatch.setattr(dp, "probe", answer)
    steps: list[tuple[str, float | None]] = []
    endpoints = provider.start(
        "lab1", kinds("postgres", "redis", "rabbitmq"), lambda s, f: steps.append((s, f))
    )
    assert set(endpoints) == {"postgres", "redis", "rabbitmq"}
    assert probes.count("postgres") == 2, "postgres must answer twice"
    for service, endpoint in endpoints.items():
        container = engine.by_name[f"sdtutor-lab1-{service}"]
        assert container.labels == dp.labels_for("lab1", service, "home1")
        expected = {"container": container.name, "id": container.id}
        if service == "rabbitmq":
            management = container.ports["15672/tcp"][0]["HostPort"]
            expected["management_url"] = f"http://127.0.0.1:{management}/"
        assert endpoint.handle == expected
        parts = urlsplit(endpoint.url)
        assert parts.hostname == "127.0.0.1"
        assert parts.port == int(container.ports[dp.SERVICE_PORTS[service][0]][0]["HostPort"])
        assert unquote(parts.password or "") == dp.reusable_password(service, container.attrs)
    assert ("postgres is ready", 1.0) in steps


def test_start_reuses_a_running_container_and_starts_a_stopped_one(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    monkeypatch.setattr(dp, "probe", lambda service, url: True)
    first = provider.start("lab1", kinds("redis"))["redis"]
    container = engine.by_name["sdtutor-lab1-redis"]
    assert provider.start("lab1", kinds("redis"))["redis"].url == first.url
    container.status = "exited"
    again = provider.start("lab1", kinds("redis"))["redis"]
    assert engine.by_name["sdtutor-lab1-redis"] is container
    assert container.status == "running"
    assert urlsplit(again.url).password == urlsplit(first.url).password
    assert engine.removed == []


def test_start_refuses_a_foreign_container_with_our_name(
    fake: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = fake
    foreign = engine.create(**dp.container_spec("lab1", "redis", "pw", home="home1"))
    foreign.labels = {}
    with pytest.raises(ProviderError, match="did not create"):
        provider.start("lab1", kinds("redis"))
    assert "sdtutor-lab1-redis" in engine.by_name


def test_start_pulls_a_missing_image_with_progress(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    engine.has_images = False
    monkeypatch.setattr(dp, "probe", lambda service, url: True)
    steps: list[tuple[str, float | None]] = []

    def record(step: str, fraction: float | None) -> None:
        steps.append((step, fraction))

    provider.start("lab1", kinds("redis"), record)
    assert engine.pulled == [("redis", "7.2.6-alpine")]
    known = [f for step, f in steps if step.startswith("Pull") and f is not None]
    assert known == sorted(known) and known[-1] == 1.0 and 0.5 in known


def test_a_timeout_removes_what_start_created_and_quotes_the_log(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    monkeypatch.setattr(dp, "probe", lambda service, url: service != "rabbitmq")
    monkeypatch.setitem(dp.READY_TIMEOUT, "rabbitmq", 0.0)
    with pytest.raises(ProviderError) as caught:
        provider.start("lab1", kinds("redis", "rabbitmq"))
    assert "rabbitmq did not answer" in caught.value.message
    assert "FATAL: something went wrong" in caught.value.hint
    assert engine.by_name == {}
    assert sorted(engine.removed) == ["sdtutor-lab1-rabbitmq", "sdtutor-lab1-redis"]


def test_ctrl_c_during_start_removes_what_start_created(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    engine.create(**dp.container_spec("lab1", "redis", "kept-password", home="home1")).start()

    def interrupt(service: str, url: str) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(dp, "probe", interrupt)
    with pytest.raises(KeyboardInterrupt):
        provider.start("lab1", kinds("redis", "postgres"))
    assert list(engine.by_name) == ["sdtutor-lab1-redis"], "reused container stays"
    assert engine.removed == ["sdtutor-lab1-postgres"]


def test_docker_api_errors_become_provider_errors(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker.errors

    provider, engine = fake

    def refuse(**spec: Any) -> None:
        raise docker.errors.APIError("500 Server Error", explanation="no space left on device")

    monkeypatch.setattr(engine, "create", refuse)
    with pytest.raises(ProviderError) as caught:
        provider.start("lab1", kinds("postgres"))
    assert "creating the container sdtutor-lab1-postgres" in caught.value.message
    assert "no space left on device" in caught.value.message
    assert caught.value.hint


def test_stop_removes_only_its_labs_containers(fake: tuple[DockerProvider, FakeEngine]) -> None:
    provider, engine = fake
    for lab in ("lab-a", "lab-b", "lab-ab"):
        engine.create(**dp.container_spec(lab, "redis", "pw", home="home1")).start()
    provider.stop("lab-a", {})
    assert sorted(engine.by_name) == ["sdtutor-lab-ab-redis", "sdtutor-lab-b-redis"]
    assert sorted(provider.stop_all()) == ["sdtutor-lab-ab-redis", "sdtutor-lab-b-redis"]
    assert engine.by_name == {}
    provider.stop("lab-a", {})  # nothing left: still fine


def test_start_refuses_unknown_services_before_touching_docker() -> None:
    provider = DockerProvider()
    with pytest.raises(ProviderError, match="mysql"):
        provider.start("lab1", kinds("mysql"))
    assert provider._client is None


# -- replicas, remote engines and homes against the fake engine ----------------------------


def replicated(delay_ms: int = 250) -> tuple[InstanceSpec, ...]:
    """A lab with a primary (with a lab setting), its delayed replica and a cache."""
    return (
        InstanceSpec("primary", "postgres", None, {"max_prepared_transactions": "10"}),
        InstanceSpec(
            "replica", "postgres", "primary", {"recovery_min_apply_delay_ms": str(delay_ms)}
        ),
        InstanceSpec("cache", "redis"),
    )


@pytest.fixture
def probed(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> tuple[DockerProvider, FakeEngine]:
    """The fake engine, where every server answers; probes are recorded as events."""
    provider, engine = fake

    def answer(service: str, url: str) -> bool:
        engine.events.append(("probe", engine.owner_of_port(urlsplit(url).port)))
        return True

    monkeypatch.setattr(dp, "probe", answer)
    monkeypatch.setattr(dp, "is_standby", lambda url: True)
    return provider, engine


def test_a_replicated_lab_gets_a_labelled_network_a_primary_and_a_replica(
    probed: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = probed
    endpoints = provider.start("lab1", replicated())
    assert list(engine.networks.by_name) == ["sdtutor-lab1"]
    network = engine.networks.by_name["sdtutor-lab1"]
    assert network.attrs["Labels"] == {
        "sdtutor": "1",
        "sdtutor.lab": "lab1",
        "sdtutor.home": "home1",
    }

    primary = engine.by_name["sdtutor-lab1-primary"]
    replica = engine.by_name["sdtutor-lab1-replica"]
    cache = engine.by_name["sdtutor-lab1-cache"]
    assert primary.spec["network"] == replica.spec["network"] == "sdtutor-lab1"
    assert "network" not in cache.spec, "only the replicated pair needs the network"
    assert _settings(primary.spec["command"][1:])["wal_level"] == "replica"
    assert _settings(primary.spec["command"][1:])["max_prepared_transactions"] == "10"
    [(path, archive)] = primary.archives
    assert path == "/docker-entrypoint-initdb.d"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        script = tar.extractfile("sdtutor-replication.sh")
        assert script is not None and script.read().decode() == dp.INIT_SCRIPT
    assert replica.archives == []

    primary_env = primary.spec["environment"]
    replica_env = replica.spec["environment"]
    assert primary_env["SDTUTOR_REPLICATION_PASSWORD"] != primary_env["POSTGRES_PASSWORD"]
    assert (
        replica_env["SDTUTOR_REPLICATION_PASSWORD"] == primary_env["SDTUTOR_REPLICATION_PASSWORD"]
    )
    assert replica.spec["image"] == primary.spec["image"]
    assert _settings(replica.spec["command"])["recovery_min_apply_delay"] == "250ms"
    assert replica.labels == dp.labels_for("lab1", "postgres", "home1")

    # The replica holds the primary's roles: its admin URL has the primary's password.
    assert (
        urlsplit(endpoints["replica"].url).password == urlsplit(endpoints["primary"].url).password
    )
    assert urlsplit(endpoints["replica"].url).port != urlsplit(endpoints["primary"].url).port
    assert endpoints["replica"].handle["replica_of"] == "primary"
    assert "replica_of" not in endpoints["primary"].handle


def test_the_replica_is_made_only_once_its_primary_answers(
    probed: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = probed
    # The replica is listed first: the order of lab.yaml does not matter.
    instances = tuple(reversed(replicated()))
    provider.start("lab1", instances)
    events = engine.events
    assert events[0] == ("network", "sdtutor-lab1")
    primary_ready = max(i for i, e in enumerate(events) if e == ("probe", "sdtutor-lab1-primary"))
    assert events.index(("create", "sdtutor-lab1-replica")) > primary_ready
    assert events.count(("probe", "sdtutor-lab1-primary")) == 2


def test_stop_removes_the_labs_network_too(probed: tuple[DockerProvider, FakeEngine]) -> None:
    provider, engine = probed
    endpoints = provider.start("lab1", replicated())
    provider.start("lab2", replicated())
    provider.stop("lab1", endpoints)
    assert sorted(engine.by_name) == [
        "sdtutor-lab2-cache",
        "sdtutor-lab2-primary",
        "sdtutor-lab2-replica",
    ]
    assert list(engine.networks.by_name) == ["sdtutor-lab2"]
    assert engine.networks.removed == ["sdtutor-lab1"]
    stopped = provider.stop_all()
    assert "network sdtutor-lab2" in stopped and "sdtutor-lab2-replica" in stopped
    assert engine.by_name == {} and engine.networks.by_name == {}


def test_a_replica_of_an_unknown_instance_is_refused_before_docker_is_touched() -> None:
    provider = DockerProvider()
    lab = (InstanceSpec("primary", "postgres"), InstanceSpec("replica", "postgres", "primray"))
    with pytest.raises(ProviderError, match="primray") as caught:
        provider.start("lab1", lab)
    assert "primary, replica" in caught.value.hint
    assert provider._client is None


def test_a_second_start_reuses_the_pair_and_a_new_primary_means_a_new_replica(
    probed: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = probed
    first = provider.start("lab1", replicated())
    creates = engine.events.count(("create", "sdtutor-lab1-replica"))
    engine.by_name["sdtutor-lab1-replica"].status = "exited"
    again = provider.start("lab1", replicated())
    assert engine.events.count(("create", "sdtutor-lab1-replica")) == creates
    assert engine.by_name["sdtutor-lab1-replica"].status == "running"
    # A restarted container may get another host port; its password stays.
    assert again["primary"].url == first["primary"].url
    assert urlsplit(again["replica"].url).password == urlsplit(first["replica"].url).password

    # The primary is gone (say, removed by hand): both are made again, with new passwords.
    engine.by_name["sdtutor-lab1-primary"].remove(force=True, v=True)
    third = provider.start("lab1", replicated())
    assert engine.events.count(("create", "sdtutor-lab1-replica")) == creates + 1
    assert urlsplit(third["replica"].url).password == urlsplit(third["primary"].url).password
    assert urlsplit(third["primary"].url).password != urlsplit(first["primary"].url).password


def test_a_container_that_never_started_is_made_again(
    probed: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = probed
    # A start killed between `create` and `start`: the primary may lack its init script.
    engine.networks.create("sdtutor-lab1", labels=dp.network_labels("lab1", "home1"))
    spec = dp.container_spec(
        "lab1",
        "postgres",
        "pw-1",
        "primary",
        "home1",
        settings={"max_prepared_transactions": "10"},
        replication_password="pw-2",
        network="sdtutor-lab1",
    )
    leftover = engine.create(**spec)
    provider.start("lab1", replicated())
    assert "sdtutor-lab1-primary" in engine.removed
    primary = engine.by_name["sdtutor-lab1-primary"]
    assert primary is not leftover and len(primary.archives) == 1


def test_changed_settings_make_the_container_again(
    probed: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = probed
    provider.start("lab1", replicated(delay_ms=250))
    primary = engine.by_name["sdtutor-lab1-primary"]
    provider.start("lab1", replicated(delay_ms=1000))
    assert engine.by_name["sdtutor-lab1-primary"] is primary
    assert "sdtutor-lab1-replica" in engine.removed
    replica = engine.by_name["sdtutor-lab1-replica"]
    assert _settings(replica.spec["command"])["recovery_min_apply_delay"] == "1000ms"


def test_a_replica_that_is_no_standby_is_removed_with_its_network(
    probed: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = probed
    monkeypatch.setattr(dp, "is_standby", lambda url: False)
    with pytest.raises(ProviderError, match="not as a standby of 'primary'") as caught:
        provider.start("lab1", replicated())
    assert "FATAL: something went wrong" in caught.value.hint
    assert engine.by_name == {}
    assert engine.networks.by_name == {} and engine.networks.removed == ["sdtutor-lab1"]


def test_a_replica_that_stops_while_copying_quotes_its_log(
    probed: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = probed
    original = FakeContainer.start

    def start(self: FakeContainer) -> None:
        original(self)
        if self.name.endswith("-replica"):
            self.status = "exited"  # pg_basebackup failed

    monkeypatch.setattr(FakeContainer, "start", start)
    with pytest.raises(ProviderError, match="stopped while starting") as caught:
        provider.start("lab1", replicated())
    assert "FATAL" in caught.value.hint
    assert engine.by_name == {} and engine.networks.by_name == {}


def test_a_foreign_network_with_the_labs_name_is_refused(
    probed: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = probed
    engine.networks.create("sdtutor-lab1", labels={"owner": "someone"})
    with pytest.raises(ProviderError, match="did not create"):
        provider.start("lab1", replicated())
    assert "sdtutor-lab1" in engine.networks.by_name
    assert engine.by_name == {}


def test_a_network_made_again_replaces_containers_attached_to_the_old_one(
    probed: tuple[DockerProvider, FakeEngine],
) -> None:
    provider, engine = probed
    provider.start("lab1", replicated())
    old_primary = engine.by_name["sdtutor-lab1-primary"]
    # Someone removed the network by hand (the containers first, as Docker requires).
    del engine.networks.by_name["sdtutor-lab1"]
    provider.start("lab1", replicated())
    assert engine.by_name["sdtutor-lab1-primary"] is not old_primary
    assert engine.by_name["sdtutor-lab1-primary"].status == "running"


def test_a_remote_engine_publishes_on_its_address_and_urls_name_it(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    monkeypatch.setenv("DOCKER_HOST", "tcp://class-engine.example.edu:2376")
    probed_hosts: list[str | None] = []

    def answer(service: str, url: str) -> bool:
        probed_hosts.append(urlsplit(url).hostname)
        return True

    monkeypatch.setattr(dp, "probe", answer)
    endpoints = provider.start("lab1", kinds("postgres", "redis", "rabbitmq"))
    passwords = set()
    for service, endpoint in endpoints.items():
        container = engine.by_name[f"sdtutor-lab1-{service}"]
        assert set(container.spec["ports"].values()) == {("0.0.0.0", None)}
        parts = urlsplit(endpoint.url)
        assert parts.hostname == "class-engine.example.edu"
        assert parts.port == int(container.ports[dp.SERVICE_PORTS[service][0]][0]["HostPort"])
        passwords.add(unquote(parts.password or ""))
    assert len(passwords) == 3 and all(len(p) >= 16 for p in passwords), "one random password each"
    management = urlsplit(endpoints["rabbitmq"].handle["management_url"])
    assert management.hostname == "class-engine.example.edu"
    assert set(probed_hosts) == {"class-engine.example.edu"}
    # The same containers are handed out again on the next start.
    again = provider.start("lab1", kinds("postgres", "redis", "rabbitmq"))
    assert {k: e.url for k, e in again.items()} == {k: e.url for k, e in endpoints.items()}
    assert engine.removed == []


def test_a_container_made_for_a_local_engine_is_not_published_remotely(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    monkeypatch.setattr(dp, "probe", lambda service, url: True)
    provider.start("lab1", kinds("redis"))
    monkeypatch.setenv("DOCKER_HOST", "ssh://teacher@class-engine")
    endpoint = provider.start("lab1", kinds("redis"))["redis"]
    assert engine.removed == ["sdtutor-lab1-redis"]
    assert urlsplit(endpoint.url).hostname == "class-engine"


class _FakeClient:
    def ping(self) -> bool:
        return True

    def version(self) -> dict[str, str]:
        return {"Version": "27.3.1"}

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("docker_host", "remote"),
    [("unix:///var/run/docker.sock", False), ("tcp://class-engine:2376", True)],
)
def test_availability_says_where_services_will_be_reachable(
    monkeypatch: pytest.MonkeyPatch, docker_host: str, remote: bool
) -> None:
    import docker

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    monkeypatch.setattr(docker, "from_env", lambda **kwargs: _FakeClient())
    available = DockerProvider.availability()
    assert available.ok and available.services == ("postgres", "redis", "rabbitmq")
    assert f"Docker Engine 27.3.1 at {docker_host}" in available.detail
    if remote:
        assert "reachable by anyone on that network" in available.detail
        assert "class-engine" in available.detail.split(";", 1)[1]
    else:
        assert "reachable" not in available.detail


def test_stop_and_stop_all_leave_another_homes_containers_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = FakeEngine()
    provider = DockerProvider()
    monkeypatch.setattr(provider, "_connect", lambda: engine)
    monkeypatch.setattr(dp.time, "sleep", lambda seconds: None)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(dp, "probe", lambda service, url: True)
    monkeypatch.setattr(dp, "is_standby", lambda url: True)
    home = {"id": "bbbb2222"}
    monkeypatch.setattr("sdtutor.services.names.home_id", lambda: home["id"])
    # Another learner on the same engine, with the same lab, a replica and a cache.
    provider.start("lab1", replicated())
    theirs = sorted(engine.by_name)
    assert theirs[0] == "sdtutor-bbbb2222-lab1-cache"
    home["id"] = "aaaa1111"
    endpoints = provider.start("lab1", replicated())
    mine = sorted(set(engine.by_name) - set(theirs))
    assert mine == [
        "sdtutor-aaaa1111-lab1-cache",
        "sdtutor-aaaa1111-lab1-primary",
        "sdtutor-aaaa1111-lab1-replica",
    ]
    provider.stop("lab1", endpoints)
    assert sorted(engine.by_name) == theirs
    assert list(engine.networks.by_name) == ["sdtutor-bbbb2222-lab1"]
    provider.start("lab2", kinds("redis"))
    assert sorted(provider.stop_all()) == ["sdtutor-aaaa1111-lab2-redis"]
    assert sorted(engine.by_name) == theirs
    assert all(c.status == "running" for c in engine.by_name.values())
    assert list(engine.networks.by_name) == ["sdtutor-bbbb2222-lab1"]


# -- against a real engine ------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> None:
    """Skip, saying why, unless a Docker engine answers."""
    available = DockerProvider.availability()
    if not available.ok:
        pytest.skip(f"no Docker engine answers here ({available.detail})")


def _labelled(lab: str) -> list[Any]:
    """This home's containers of `lab` on the engine."""
    import docker

    home, scope = dp.lab_home(lab)
    client = docker.from_env()
    try:
        return list(
            client.containers.list(
                all=True,
                filters={"label": ["sdtutor=1", f"sdtutor.lab={scope}", f"sdtutor.home={home}"]},
            )
        )
    finally:
        client.close()


def _networks(lab: str) -> list[str]:
    import docker

    _, scope = dp.lab_home(lab)
    client = docker.from_env()
    try:
        found = client.networks.list(filters={"label": ["sdtutor=1", f"sdtutor.lab={scope}"]})
        return [n.name for n in found]
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.usefixtures("engine", "home")
def test_postgres_in_docker_answers_on_loopback_and_stop_removes_it() -> None:
    import docker
    import psycopg

    provider = DockerProvider()
    lab = "pytestdocker"
    provider.stop(lab, {})  # leftovers of an interrupted earlier run
    endpoints: dict[str, Endpoint] = {}
    try:
        endpoints = provider.start(lab, kinds("postgres"))
        url = endpoints["postgres"].url
        assert urlsplit(url).hostname == dp.publish_address()[1]
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        client = docker.from_env()
        try:
            container = client.containers.get(endpoints["postgres"].handle["container"])
            bindings = container.attrs["HostConfig"]["PortBindings"]["5432/tcp"]
            assert [b["HostIp"] for b in bindings] == [dp.publish_address()[0]]
            assert container.labels["sdtutor.lab"] == dp.lab_home(lab)[1]
        finally:
            client.close()
    finally:
        provider.stop(lab, endpoints)
    assert _labelled(lab) == []


@pytest.mark.docker
@pytest.mark.usefixtures("engine", "home")
def test_stopping_one_lab_leaves_another_alone() -> None:
    provider = DockerProvider()
    lab_a, lab_b = "pytestdocker-a", "pytestdocker-b"
    for lab in (lab_a, lab_b):
        provider.stop(lab, {})
    try:
        endpoints_a = provider.start(lab_a, kinds("redis"))
        endpoints_b = provider.start(lab_b, kinds("redis"))
        provider.stop(lab_a, endpoints_a)
        assert _labelled(lab_a) == []
        remaining = _labelled(lab_b)
        assert [c.name for c in remaining] == [dp.container_name(dp.lab_home(lab_b)[1], "redis")]
        assert remaining[0].status == "running"
        assert dp.probe("redis", endpoints_b["redis"].url)
    finally:
        provider.stop(lab_a, {})
        provider.stop(lab_b, {})


@pytest.mark.docker
@pytest.mark.usefixtures("engine", "home")
def test_a_replica_in_docker_streams_its_primary_with_the_delay() -> None:
    import psycopg

    provider = DockerProvider()
    lab = "pytestdocker-replica"
    provider.stop(lab, {})
    instances = (
        InstanceSpec("primary", "postgres", None, {"max_prepared_transactions": "5"}),
        InstanceSpec("replica", "postgres", "primary", {"recovery_min_apply_delay_ms": "1500"}),
    )
    endpoints: dict[str, Endpoint] = {}
    try:
        endpoints = provider.start(lab, instances)
        assert _networks(lab) == [dp.network_name(dp.lab_home(lab)[1])]
        primary_url, replica_url = endpoints["primary"].url, endpoints["replica"].url
        with psycopg.connect(primary_url, autocommit=True) as conn:
            assert conn.execute("SHOW max_prepared_transactions").fetchone() == ("5",)
            conn.execute("CREATE TABLE t (v int)")
            conn.execute("INSERT INTO t VALUES (42)")
        with psycopg.connect(replica_url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert conn.execute("SHOW recovery_min_apply_delay").fetchone() == ("1500ms",)
            deadline = time.monotonic() + 30
            seen = None
            while time.monotonic() < deadline:
                found = conn.execute("SELECT to_regclass('t') IS NOT NULL").fetchone()
                if found == (True,):
                    seen = conn.execute("SELECT v FROM t").fetchone()
                    break
                time.sleep(0.2)
            assert seen == (42,)
        # Again: both containers are reused.
        again = provider.start(lab, instances)
        assert again["primary"].handle["id"] == endpoints["primary"].handle["id"]
        assert again["replica"].handle["id"] == endpoints["replica"].handle["id"]
    finally:
        provider.stop(lab, endpoints)
    assert _labelled(lab) == [] and _networks(lab) == []


@pytest.mark.docker
@pytest.mark.usefixtures("engine", "home")
def test_no_password_is_in_a_process_argv_inside_the_containers() -> None:
    import docker

    provider = DockerProvider()
    lab = "pytestdocker-argv"
    provider.stop(lab, {})
    instances = (
        InstanceSpec("primary", "postgres"),
        InstanceSpec("replica", "postgres", "primary"),
        InstanceSpec("cache", "redis"),
    )
    endpoints: dict[str, Endpoint] = {}
    client = docker.from_env()
    try:
        endpoints = provider.start(lab, instances)
        for endpoint in endpoints.values():
            password = unquote(urlsplit(endpoint.url).password or "")
            container = client.containers.get(endpoint.handle["container"])
            assert password not in " ".join(container.attrs["Config"]["Cmd"] or [])
            result = container.exec_run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"])
            assert password.encode() not in result.output
    finally:
        client.close()
        provider.stop(lab, endpoints)
