"""The docker provider: pinned official images in labelled containers on 127.0.0.1.

Each instance of a lab runs in one container named `sdtutor-<home>-<lab>-<instance>`,
published on the loopback interface only, on a host port the engine picks, with a random
password. Every container carries the labels `sdtutor=1`, `sdtutor.home` (the learner's
home id), `sdtutor.lab` (home and lab) and `sdtutor.service` (its kind), so `stop` removes
exactly what this home made, and `stop --all` never touches another learner's containers
on a shared engine.

The docker SDK (and psycopg, redis-py, pika) are imported inside the functions that need
them: importing docker alone takes a noticeable part of a second, and the CLI must start
fast. `docker.from_env` honours `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from sdtutor.errors import ProviderError
from sdtutor.providers.base import SERVICES, Availability, Endpoint, Progress, Provider, no_progress

if TYPE_CHECKING:
    from sdtutor.content.models import InstanceSpec

IMAGES: dict[str, str] = {
    "postgres": "postgres:15.10-alpine",
    "redis": "redis:7.2.6-alpine",
    "rabbitmq": "rabbitmq:3.13.7-management-alpine",
}
"""Pinned official images, one per service; exact version tags, never `latest`."""

SERVICE_PORTS: dict[str, tuple[str, ...]] = {
    "postgres": ("5432/tcp",),
    "redis": ("6379/tcp",),
    "rabbitmq": ("5672/tcp", "15672/tcp"),
}
"""Container ports to publish; the first one is the port the endpoint URL names."""

READY_TIMEOUT: dict[str, float] = {"postgres": 60.0, "redis": 60.0, "rabbitmq": 90.0}
"""Seconds to wait for each service to answer after its container starts."""

LOOPBACK = "127.0.0.1"
RABBITMQ_USER = "sdtutor"
LOG_LINES = 10

FIX = (
    "Start Docker Desktop or the docker service (or set DOCKER_HOST to a reachable engine), "
    "or use --provider local / external."
)
RETRY_HINT = "Check that Docker works (`docker info`) and has free disk space, then try again."

# Docker container names: [a-zA-Z0-9][a-zA-Z0-9_.-]*. Lab names go into names and label
# filters, so anything else (spaces, '=', ',') is refused up front.
_LAB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def labels_for(lab: str, service: str, home: str = "") -> dict[str, str]:
    """The labels every sdtutor container carries; `stop` selects containers by them."""
    labels = {"sdtutor": "1", "sdtutor.lab": lab, "sdtutor.service": service}
    if home:
        labels["sdtutor.home"] = home
    return labels


def container_name(lab: str, service: str) -> str:
    """The container name for one instance (or service) of one lab.

    Raises ProviderError for a name Docker cannot use.
    """
    if not _LAB_NAME.match(service):
        raise ProviderError(f"'{service}' cannot be used in a Docker container name.")
    if not _LAB_NAME.match(lab):
        raise ProviderError(
            f"'{lab}' cannot be used in a Docker container name.",
            "Lab names may use letters, digits, '.', '_' and '-', starting with a letter or digit.",
        )
    return f"sdtutor-{lab}-{service}"


def new_password() -> str:
    """A fresh random password (24 URL-safe characters)."""
    return secrets.token_urlsafe(18)


def container_spec(
    lab: str, service: str, password: str, instance: str | None = None, home: str = ""
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.run` (or `create`) for one instance.

    Raises ProviderError for an unknown kind or an unusable lab name.
    """
    if service not in IMAGES:
        raise ProviderError(
            f"The docker provider cannot supply '{service}'.",
            f"It supplies: {', '.join(IMAGES)}.",
        )
    name = container_name(lab, instance or service)
    environment: dict[str, str] = {}
    command: list[str] | None = None
    if service == "postgres":
        environment = {"POSTGRES_PASSWORD": password}
    elif service == "rabbitmq":
        environment = {"RABBITMQ_DEFAULT_USER": RABBITMQ_USER, "RABBITMQ_DEFAULT_PASS": password}
    else:
        # A lab's Redis is scratch space: no snapshots, no append-only file.
        command = ["redis-server", "--requirepass", password, "--save", "", "--appendonly", "no"]
    return {
        "image": IMAGES[service],
        "name": name,
        "labels": labels_for(lab, service, home),
        # Loopback only, and None lets the engine pick a free host port.
        "ports": {port: (LOOPBACK, None) for port in SERVICE_PORTS[service]},
        "environment": environment,
        "command": command,
        "detach": True,
    }


def endpoint_url(service: str, password: str, host_port: int) -> str:
    """The admin URL for a service published on 127.0.0.1:`host_port`.

    Raises ProviderError for an unknown service.
    """
    secret = quote(password, safe="")
    if service == "postgres":
        return f"postgresql://postgres:{secret}@{LOOPBACK}:{host_port}/postgres"
    if service == "redis":
        return f"redis://:{secret}@{LOOPBACK}:{host_port}/0"
    if service == "rabbitmq":
        return f"amqp://{RABBITMQ_USER}:{secret}@{LOOPBACK}:{host_port}/%2F"
    raise ProviderError(f"The docker provider has no URL form for '{service}'.")


def lab_home(lab: str) -> tuple[str, str]:
    """(home id, the lab's scope `<home>-<lab>`): containers of two homes never collide."""
    from sdtutor.services.names import home_id

    home = home_id()
    return home, f"{home}-{lab}"


def split_image(image: str) -> tuple[str, str]:
    """Split `repo:tag` into its repository and tag."""
    repo, _, tag = image.rpartition(":")
    return repo, tag


def update_layers(layers: dict[str, tuple[int, int]], event: dict[str, Any]) -> None:
    """Fold one decoded pull event into `layers`: layer id -> (bytes downloaded, size)."""
    layer = event.get("id")
    if not layer:
        return
    status = event.get("status", "")
    detail = event.get("progressDetail") or {}
    total = detail.get("total")
    if status == "Downloading" and isinstance(total, int) and total > 0:
        layers[layer] = (int(detail.get("current") or 0), total)
    elif status in ("Verifying Checksum", "Download complete", "Pull complete") and layer in layers:
        size = layers[layer][1]
        layers[layer] = (size, size)


def pull_fraction(layers: dict[str, tuple[int, int]]) -> float | None:
    """Fraction of known layer bytes downloaded (0..1), or None while no size is known."""
    total = sum(size for _, size in layers.values() if size > 0)
    if total <= 0:
        return None
    done = sum(min(max(current, 0), size) for current, size in layers.values() if size > 0)
    return done / total


def host_port(ports: dict[str, Any] | None, container_port: str) -> int | None:
    """The loopback host port published for `container_port`, from `container.ports`."""
    for binding in (ports or {}).get(container_port) or []:
        if binding.get("HostIp") == LOOPBACK and binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def reusable_password(service: str, attrs: dict[str, Any]) -> str | None:
    """The password of an existing container if it matches today's spec, else None.

    A container made with another image or published beyond 127.0.0.1 is not reused.
    """
    config = attrs.get("Config") or {}
    if config.get("Image") != IMAGES.get(service):
        return None
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    for port in SERVICE_PORTS[service]:
        entries = bindings.get(port) or []
        if not entries or any(entry.get("HostIp") != LOOPBACK for entry in entries):
            return None
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    password: str | None = None
    if service == "postgres":
        password = env.get("POSTGRES_PASSWORD")
    elif service == "rabbitmq":
        if env.get("RABBITMQ_DEFAULT_USER") == RABBITMQ_USER:
            password = env.get("RABBITMQ_DEFAULT_PASS")
    else:
        command = list(config.get("Cmd") or [])
        if "--requirepass" in command:
            at = command.index("--requirepass") + 1
            password = command[at] if at < len(command) else None
    return password or None


def engine_address() -> str:
    """Where the docker SDK looks for the engine: DOCKER_HOST, else the default socket."""
    default = "npipe:////./pipe/docker_engine" if os.name == "nt" else "unix:///var/run/docker.sock"
    return os.environ.get("DOCKER_HOST") or default


def short_reason(exc: BaseException) -> str:
    """A one-line reason why the Docker engine could not be reached."""
    text = str(exc)
    where = engine_address()
    lowered = text.lower()
    if "connection refused" in lowered:
        return f"nothing answers at {where}"
    if "no such file" in lowered or "filenotfounderror" in lowered:
        return f"no Docker socket at {where}"
    if "permission denied" in lowered or "permissionerror" in lowered:
        return f"permission denied on {where}"
    if "timed out" in lowered or "timeout" in lowered:
        return f"no answer from {where} in time"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def tail_lines(raw: bytes | str, limit: int = LOG_LINES) -> str:
    """The last `limit` non-empty lines of a container log, each cut to 200 characters."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    lines = [line.rstrip()[:200] for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-limit:])


def redis_probe_bytes(password: str) -> bytes:
    """`AUTH <password>` then `PING`, encoded as RESP commands."""

    def command(*args: bytes) -> bytes:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        return b"".join(parts)

    return command(b"AUTH", password.encode()) + command(b"PING")


AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
"""The AMQP 0-9-1 protocol header; a broker answers it with a Connection.Start frame."""


def probe(service: str, url: str) -> bool:
    """Whether the service at `url` answers a real request; never raises."""
    if service == "postgres":
        return _probe_postgres(url)
    if service == "redis":
        return _probe_redis(url)
    if service == "rabbitmq":
        return _probe_rabbitmq(url)
    return False


def _probe_postgres(url: str) -> bool:
    import psycopg  # costly import, only once a lab needs PostgreSQL

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except (psycopg.Error, OSError):
        return False


def _probe_redis(url: str) -> bool:
    try:
        import redis
    except ImportError:
        return _probe_redis_socket(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _probe_redis_socket(url: str) -> bool:
    """AUTH and PING over a plain socket, for when redis-py is not installed."""
    parts = urlsplit(url)
    reply = b""
    try:
        with socket.create_connection((parts.hostname or LOOPBACK, parts.port or 6379), 2) as s:
            s.settimeout(2)
            s.sendall(redis_probe_bytes(unquote(parts.password or "")))
            while reply.count(b"\r\n") < 2:
                chunk = s.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"+OK\r\n") and b"+PONG\r\n" in reply


def _amqp_answers(host: str, port: int) -> bool:
    # A bare TCP connect is not enough: Docker's port proxy accepts connections before the
    # broker listens. A broker answers the protocol header with a method frame (type 1).
    try:
        with socket.create_connection((host, port), 2) as s:
            s.settimeout(2)
            s.sendall(AMQP_HEADER)
            return s.recv(1) == b"\x01"
    except OSError:
        return False


def _probe_rabbitmq(url: str) -> bool:
    parts = urlsplit(url)
    if not _amqp_answers(parts.hostname or LOOPBACK, parts.port or 5672):
        return False
    try:
        import pika
        import pika.exceptions
    except ImportError:
        return True
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 2
    params.stack_timeout = 5
    # pika logs every refused attempt at ERROR; while we poll, those are expected.
    logger = logging.getLogger("pika")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        pika.BlockingConnection(params).close()
        return True
    except (pika.exceptions.AMQPError, OSError):
        return False
    finally:
        logger.setLevel(level)


def _explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _translate(exc: BaseException, step: str, hint: str) -> ProviderError | None:
    """The ProviderError for a docker or HTTP failure during `step`; None for anything else."""
    import docker.errors
    import requests

    if isinstance(exc, docker.errors.APIError):
        return ProviderError(f"Docker failed while {step}: {_explain(exc)}", hint)
    if isinstance(exc, docker.errors.DockerException | requests.RequestException):
        return ProviderError(f"Lost contact with Docker while {step}: {short_reason(exc)}.", FIX)
    return None


class DockerProvider(Provider):
    """Runs each service in a pinned official image on the Docker engine."""

    name: ClassVar[str] = "docker"
    description: ClassVar[str] = (
        "Pinned official images in Docker containers, on 127.0.0.1 only, with random passwords."
    )
    services: ClassVar[frozenset[str]] = frozenset({"postgres", "redis", "rabbitmq"})
    restarts_servers: ClassVar[bool] = True

    def __init__(self) -> None:
        self._client: Any = None

    @classmethod
    def availability(cls) -> Availability:
        """Ping the engine within a few seconds; never raises."""
        try:
            import docker  # costly import, only when Docker is considered
        except ImportError:
            return Availability(
                ok=False,
                detail="the docker Python package is not installed",
                fix="Install sdtutor with its dependencies (pip install docker), "
                "or use --provider local / external.",
            )
        client: Any = None
        try:
            client = docker.from_env(timeout=3)
            client.ping()
            version = client.version().get("Version", "unknown version")
        except Exception as exc:
            reason = short_reason(exc)
            fix = FIX
            if reason.startswith("permission denied"):
                fix = "Add your user to the docker group and log in again. " + FIX
            return Availability(ok=False, detail=f"Docker: {reason}", fix=fix)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        return Availability(
            ok=True,
            detail=f"Docker Engine {version} at {engine_address()}",
            services=tuple(s for s in SERVICES if s in cls.services),
        )

    def start(
        self, lab: str, instances: Sequence[InstanceSpec], progress: Progress = no_progress
    ) -> dict[str, Endpoint]:
        """Start (or reuse) one container per instance and wait until each answers.

        Raises ProviderError when Docker fails or a service does not answer in time;
        containers this call created are removed first (also on KeyboardInterrupt).
        """
        home, lab = lab_home(lab)
        wanted = {i.name: i.kind for i in instances}
        for instance, service in wanted.items():
            # Refuse unknown kinds and unusable names before touching Docker.
            container_spec(lab, service, "", instance)
        client = self._connect()
        created: list[str] = []
        step, hint = "connecting to Docker", RETRY_HINT
        try:
            running: dict[str, tuple[Any, str, str]] = {}
            for instance, service in wanted.items():
                name = container_name(lab, instance)
                step, hint = f"looking for the container {name}", RETRY_HINT
                container, password = self._reuse(client, lab, service, instance, home)
                if container is None:
                    image = IMAGES[service]
                    step = f"pulling {image}"
                    hint = (
                        "Check the internet connection and that Docker can reach its registry "
                        f"(try `docker pull {image}`), then try again."
                    )
                    self._ensure_image(client, image, progress)
                    step, hint = f"creating the container {name}", RETRY_HINT
                    password = new_password()
                    created.append(name)
                    container = client.containers.create(
                        **container_spec(lab, service, password, instance, home)
                    )
                    step = f"starting the container {name}"
                    progress(f"Starting {service}", None)
                    container.start()
                running[instance] = (container, password, service)
            endpoints: dict[str, Endpoint] = {}
            for instance, (container, password, service) in running.items():
                step = f"waiting for {service} to answer"
                endpoints[instance] = self._wait_ready(
                    lab, service, container, password, progress, instance
                )
            return endpoints
        except ProviderError:
            self._discard(client, lab, created)
            raise
        except BaseException as exc:
            self._discard(client, lab, created)
            translated = _translate(exc, step, hint)
            if translated is None:
                raise
            raise translated from exc

    def stop(self, lab: str, endpoints: dict[str, Endpoint]) -> None:
        """Remove every container labelled with `lab` (and its volumes); a missing one is fine.

        Raises ProviderError when Docker cannot be reached or a container cannot be removed.
        """
        _, lab = lab_home(lab)
        self._remove_labelled(["sdtutor=1", f"sdtutor.lab={lab}"], f"lab {lab}")

    def stop_all(self) -> list[str]:
        """Remove every container this home made; returns their names.

        Raises ProviderError when Docker cannot be reached or a container cannot be removed.
        """
        from sdtutor.services.names import home_id

        return self._remove_labelled(["sdtutor=1", f"sdtutor.home={home_id()}"], "sdtutor")

    # -- helpers ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        """The docker client, made on first use; raises ProviderError when there is no engine."""
        if self._client is None:
            try:
                import docker  # costly import, only when a lab uses Docker

                self._client = docker.from_env()
            except Exception as exc:
                raise ProviderError(f"Cannot reach Docker: {short_reason(exc)}.", FIX) from exc
        return self._client

    def _reuse(
        self, client: Any, lab: str, service: str, instance: str, home: str
    ) -> tuple[Any, str]:
        """An existing, matching container for the instance (started if stopped), or None."""
        import docker.errors

        name = container_name(lab, instance)
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            return None, ""
        labels = container.labels or {}
        if any(labels.get(key) != value for key, value in labels_for(lab, service, home).items()):
            raise ProviderError(
                f"A container named {name} exists, but sdtutor did not create it.",
                f"Rename or remove it yourself (docker rm -f {name}), then try again.",
            )
        password = reusable_password(service, container.attrs)
        if password is None or container.status in ("dead", "removing"):
            # Ours, but made with another image or settings: replace it.
            container.remove(force=True, v=True)
            return None, ""
        if container.status == "paused":
            container.unpause()
        elif container.status in ("created", "exited"):
            container.start()
        return container, password

    def _ensure_image(self, client: Any, image: str, progress: Progress) -> None:
        """Pull `image` unless present, reporting download progress."""
        import docker.errors

        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        step = f"Pulling {image}"
        progress(step, None)
        layers: dict[str, tuple[int, int]] = {}
        shown = 0.0
        repo, tag = split_image(image)
        for event in client.api.pull(repo, tag, stream=True, decode=True):
            if "error" in event:
                raise ProviderError(
                    f"Docker could not pull {image}: {event['error']}",
                    "Check the internet connection and that Docker can reach its registry "
                    f"(try `docker pull {image}`), then try again.",
                )
            update_layers(layers, event)
            fraction = pull_fraction(layers)
            # Layer sizes arrive as downloads begin, so the raw fraction can dip; only
            # report forward movement, in steps of at least 1%.
            if fraction is not None and fraction >= shown + 0.01:
                shown = fraction
                progress(step, fraction)
        progress(f"Pulled {image}", 1.0)

    def _wait_ready(
        self,
        lab: str,
        service: str,
        container: Any,
        password: str,
        progress: Progress,
        instance: str | None = None,
    ) -> Endpoint:
        """Poll until the service answers; raises ProviderError (with its log) on timeout."""
        name = container_name(lab, instance or service)
        timeout = READY_TIMEOUT[service]
        deadline = time.monotonic() + timeout
        # The postgres image runs a temporary server for initdb, stops it, then starts the
        # real one: ask for two answers a second apart so we never hand out the first.
        needed = 2 if service == "postgres" else 1
        answered = 0
        progress(f"Waiting for {service} to answer", None)
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                raise ProviderError(
                    f"The {service} container {name} stopped while starting.",
                    self._log_hint(container),
                )
            port = host_port(container.ports, SERVICE_PORTS[service][0])
            url = endpoint_url(service, password, port) if port is not None else ""
            if url and probe(service, url):
                answered += 1
                if answered >= needed:
                    break
                time.sleep(1.0)
                continue
            answered = 0
            if time.monotonic() >= deadline:
                raise ProviderError(
                    f"{service} did not answer within {timeout:g} s (container {name}).",
                    self._log_hint(container),
                )
            time.sleep(0.5)
        handle: dict[str, Any] = {"container": name, "id": container.id}
        if service == "rabbitmq":
            management = host_port(container.ports, "15672/tcp")
            if management is not None:
                handle["management_url"] = f"http://{LOOPBACK}:{management}/"
        progress(f"{service} is ready", 1.0)
        return Endpoint(service, url, handle)

    @staticmethod
    def _log_hint(container: Any) -> str:
        """A hint quoting the container's last log lines, read before it is removed."""
        try:
            log = tail_lines(container.logs(tail=LOG_LINES * 3))
        except Exception:
            log = ""
        advice = (
            "Try again; if it keeps failing, check that Docker has enough memory and disk "
            "(`docker info`)."
        )
        if not log:
            return advice
        return f"Its last log lines:\n{log}\n{advice}"

    @staticmethod
    def _discard(client: Any, lab: str, names: list[str]) -> None:
        """Remove the containers a failed start created; best effort, never raises."""
        for name in names:
            try:
                container = client.containers.get(name)
                if (container.labels or {}).get("sdtutor.lab") == lab:
                    container.remove(force=True, v=True)
            except Exception:
                pass  # the error that made us clean up is the one to report

    def _remove_labelled(self, label_filter: list[str], what: str) -> list[str]:
        """Remove all containers matching every label in `label_filter`; returns names."""
        import docker.errors
        import requests

        client = self._connect()
        try:
            containers = client.containers.list(
                all=True, filters={"label": label_filter}, ignore_removed=True
            )
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise ProviderError(
                f"Docker could not list the containers of {what}: {_explain(exc)}", FIX
            ) from exc
        removed: list[str] = []
        failed: list[str] = []
        for container in containers:
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except (docker.errors.DockerException, requests.RequestException) as exc:
                failed.append(f"{container.name} ({_explain(exc)})")
                continue
            removed.append(container.name)
        if failed:
            raise ProviderError(
                f"Docker could not remove {', '.join(failed)}.",
                "Remove them with `docker rm -f NAME`, or try again.",
            )
        return removed


__all__ = [
    "IMAGES",
    "READY_TIMEOUT",
    "SERVICE_PORTS",
    "DockerProvider",
    "container_name",
    "container_spec",
    "endpoint_url",
    "engine_address",
    "host_port",
    "lab_home",
    "labels_for",
    "new_password",
    "probe",
    "pull_fraction",
    "reusable_password",
    "short_reason",
    "split_image",
    "tail_lines",
    "update_layers",
]
