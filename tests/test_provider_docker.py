"""The docker provider: pure parts without an engine, the real thing where one answers."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
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
    rabbit = dp.container_spec("lab", "rabbitmq", pw)
    assert rabbit["environment"] == {
        "RABBITMQ_DEFAULT_USER": "sdtutor",
        "RABBITMQ_DEFAULT_PASS": pw,
    }
    assert "15672/tcp" in rabbit["ports"] and "5672/tcp" in rabbit["ports"]
    redis = dp.container_spec("lab", "redis", pw)
    assert redis["command"] == [
        "redis-server",
        "--requirepass",
        pw,
        "--save",
        "",
        "--appendonly",
        "no",
    ]


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
    assert DockerProvider.replicas is False
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
    return {
        "Config": {
            "Image": spec["image"],
            "Env": [f"{k}={v}" for k, v in spec["environment"].items()] + ["PATH=/usr/bin"],
            "Cmd": spec["command"] or ["docker-entrypoint.sh"],
        },
        "HostConfig": {
            "PortBindings": {
                port: [{"HostIp": ip, "HostPort": ""}] for port, (ip, _) in spec["ports"].items()
            }
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
        self.name: str = spec["name"]
        self.id = "id-" + self.name
        self.labels: dict[str, str] = dict(spec["labels"])
        self.status = "created"
        self.attrs = _attrs_for(spec)
        self.ports: dict[str, Any] = {}
        self.bindings = dict(spec["ports"])

    def start(self) -> None:
        self.status = "running"
        self.engine.next_port += 1
        self.ports = {
            port: [{"HostIp": ip, "HostPort": str(self.engine.next_port)}]
            for port, (ip, _) in self.bindings.items()
        }

    def reload(self) -> None:
        pass

    def logs(self, tail: int = 10) -> bytes:
        return b"starting\nFATAL: something went wrong\n"

    def remove(self, force: bool = False, v: bool = False) -> None:
        assert force and v
        del self.engine.by_name[self.name]
        self.engine.removed.append(self.name)


class FakeEngine:
    """Just enough of docker.DockerClient for DockerProvider.start/stop."""

    def __init__(self, has_images: bool = True) -> None:
        self.by_name: dict[str, FakeContainer] = {}
        self.removed: list[str] = []
        self.next_port = 40000
        self.has_images = has_images
        self.pulled: list[tuple[str, str]] = []
        self.containers = self
        self.images = self
        self.api = self

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
    return provider, engine


def test_start_creates_labelled_containers_and_returns_urls(
    fake: tuple[DockerProvider, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, engine = fake
    probes: list[str] = []
    monkeypatch.setattr(dp, "probe", lambda service, url: probes.append(service) or True)
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


# -- against a real engine ------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> None:
    """Skip, saying why, unless a Docker engine answers."""
    available = DockerProvider.availability()
    if not available.ok:
        pytest.skip(f"no Docker engine answers here ({available.detail})")


def _labelled(lab: str) -> list[Any]:
    import docker

    client = docker.from_env()
    try:
        return list(
            client.containers.list(all=True, filters={"label": ["sdtutor=1", f"sdtutor.lab={lab}"]})
        )
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.usefixtures("engine")
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
        assert urlsplit(url).hostname == "127.0.0.1"
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        client = docker.from_env()
        try:
            container = client.containers.get(endpoints["postgres"].handle["container"])
            bindings = container.attrs["HostConfig"]["PortBindings"]["5432/tcp"]
            assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
            published = container.ports["5432/tcp"]
            assert published and all(b["HostIp"] == "127.0.0.1" for b in published)
            assert container.labels["sdtutor.lab"] == lab
        finally:
            client.close()
    finally:
        provider.stop(lab, endpoints)
    assert _labelled(lab) == []


@pytest.mark.docker
@pytest.mark.usefixtures("engine")
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
        assert [c.name for c in remaining] == ["sdtutor-pytestdocker-b-redis"]
        assert remaining[0].status == "running"
        assert dp.probe("redis", endpoints_b["redis"].url)
    finally:
        provider.stop(lab_a, {})
        provider.stop(lab_b, {})
