"""The docker provider: pinned official images in labelled containers.

Each instance of a lab runs in one container named `sdtutor-<home>-<lab>-<instance>`, on a
host port the engine picks, with its own random password. Every container carries the
labels `sdtutor=1`, `sdtutor.home` (the learner's home id), `sdtutor.lab` (home and lab)
and `sdtutor.service` (its kind), so `stop` removes exactly what this home made, and
`stop --all` never touches another learner's containers on a shared engine.

Where ports are published is decided once, by `publish_address()`: a local engine (Unix
socket, named pipe, tcp://127.0.0.1 or localhost) publishes on 127.0.0.1 only; a remote
one (DOCKER_HOST=tcp://host:2376 or ssh://user@host, or a Docker context naming one: a
class sharing one engine) publishes on all the engine's addresses and URLs name its host.

A PostgreSQL instance with `replica_of` is a streaming replica: both containers join a
user-defined network named after the lab (labelled, removed on stop); the primary runs
with wal_level=replica and, made once at initdb by a script copied into the container, a
replication role with its own random password and a pg_hba line for replication from that
network; the replica's entrypoint waits for the primary, copies it with pg_basebackup and
starts as a hot standby. No password is ever in a container's command line: they travel
in environment variables and, inside the containers, in 0600 files.

The docker SDK (and psycopg, redis-py, pika) are imported inside the functions that need
them: importing docker alone takes a noticeable part of a second, and the CLI must start
fast. `docker.from_env` honours `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` and
(docker 7.2 and later) the Docker CLI's current context.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import os
import re
import secrets
import socket
import tarfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
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
REPLICA_READY_TIMEOUT = 120.0
"""Seconds a replica may take to copy its primary and answer as a standby."""

LOOPBACK = "127.0.0.1"
ALL_IPV4 = "0.0.0.0"
ALL_IPV6 = "::"
RABBITMQ_USER = "sdtutor"
LOG_LINES = 10

REPLICATION_ROLE = "sdtutor_replication"
PRIMARY_SETTINGS: dict[str, str] = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "wal_keep_size": "64MB",  # a replica that was down a while can still catch up
}
"""Server settings of a primary that has replicas (before the lab's own settings)."""
REPLICA_DELAY_SETTING = "recovery_min_apply_delay_ms"
"""The instance setting that becomes a replica's recovery_min_apply_delay."""
INIT_DIR = "/docker-entrypoint-initdb.d"
INIT_SCRIPT_NAME = "sdtutor-replication.sh"
REPLICA_PASSFILE = "/tmp/sdtutor-replica.pgpass"

# Sourced by the postgres image's entrypoint while initdb's temporary server runs, once,
# as the postgres user. The password comes from the environment through psql's \getenv
# (PostgreSQL 15), never through an argument; `samenet` admits the lab network's subnet.
INIT_SCRIPT = f"""\
# Written by sdtutor: a replication role and its pg_hba line, for this lab's replicas.
psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \\
    --username "${{POSTGRES_USER:-postgres}}" --dbname postgres <<'SQL'
\\getenv sdtutor_password SDTUTOR_REPLICATION_PASSWORD
CREATE ROLE {REPLICATION_ROLE} WITH REPLICATION LOGIN PASSWORD :'sdtutor_password';
SQL
printf 'host replication {REPLICATION_ROLE} samenet scram-sha-256\\n' >> "$PGDATA/pg_hba.conf"
"""

# The replica container's entrypoint (`sh -c SCRIPT sdtutor-replica ARGS...`, as the
# postgres user): the replication password goes to a 0600 passfile, the first boot copies
# the primary once it answers, and every boot runs `postgres ARGS...` as a hot standby.
# `sdtutor.copied` marks a finished copy, so a half-made copy is made again and a
# promoted replica is never overwritten.
REPLICA_SCRIPT = f"""\
set -eu
umask 077
printf '*:*:*:{REPLICATION_ROLE}:%s\\n' "$SDTUTOR_REPLICATION_PASSWORD" > "$PGPASSFILE"
unset SDTUTOR_REPLICATION_PASSWORD POSTGRES_PASSWORD
if [ ! -e "$PGDATA/sdtutor.copied" ]; then
    echo "sdtutor: waiting for $SDTUTOR_PRIMARY_HOST to answer"
    until pg_isready -q -h "$SDTUTOR_PRIMARY_HOST" -p 5432; do sleep 1; done
    echo "sdtutor: copying $SDTUTOR_PRIMARY_HOST with pg_basebackup"
    find "$PGDATA" -mindepth 1 -delete
    pg_basebackup -D "$PGDATA" -h "$SDTUTOR_PRIMARY_HOST" -p 5432 -U {REPLICATION_ROLE} \\
        -X stream -c fast --no-sync -w
    touch "$PGDATA/standby.signal" "$PGDATA/sdtutor.copied"
fi
chmod 700 "$PGDATA"
exec postgres "$@"
"""

# The redis container's command (`sh -c SCRIPT sdtutor-redis ARGS...`, as root): the
# password goes from the environment to a 0600 config file, then the image's entrypoint
# hands the file to redis-server as the redis user.
REDIS_CONF = "/data/sdtutor-redis.conf"
REDIS_SCRIPT = f"""\
umask 077
printf 'requirepass %s\\n' "$REDIS_PASSWORD" > {REDIS_CONF}
unset REDIS_PASSWORD
exec docker-entrypoint.sh redis-server {REDIS_CONF} "$@"
"""

FIX = (
    "Start Docker Desktop or the docker service (or set DOCKER_HOST to a reachable engine), "
    "or use --provider local / external."
)
RETRY_HINT = "Check that Docker works (`docker info`) and has free disk space, then try again."

# Docker container names: [a-zA-Z0-9][a-zA-Z0-9_.-]*. Lab names go into names and label
# filters, so anything else (spaces, '=', ',') is refused up front.
_LAB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def labels_for(lab: str, service: str, home: str = "") -> dict[str, str]:
    """The labels every sdtutor container carries; `stop` selects containers by them."""
    labels = {"sdtutor": "1", "sdtutor.lab": lab, "sdtutor.service": service}
    if home:
        labels["sdtutor.home"] = home
    return labels


def network_labels(lab: str, home: str = "") -> dict[str, str]:
    """The labels of a lab's network; `stop` removes it by them."""
    labels = {"sdtutor": "1", "sdtutor.lab": lab}
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


def network_name(lab: str) -> str:
    """The name of the network a lab's replicas reach their primary on."""
    if not _LAB_NAME.match(lab):
        raise ProviderError(f"'{lab}' cannot be used in a Docker network name.")
    return f"sdtutor-{lab}"


def new_password() -> str:
    """A fresh random password (24 URL-safe characters)."""
    return secrets.token_urlsafe(18)


def _setting_pairs(settings: Mapping[str, str], what: str) -> list[tuple[str, str]]:
    """Checked (name, value) pairs of server settings; raises ProviderError on a bad one."""
    pairs = []
    for name, value in settings.items():
        text = str(value)
        if not _SETTING_NAME.match(name) or "\x00" in text or "\n" in text:
            raise ProviderError(
                f"The setting {name!r} of {what} cannot be passed to the server.",
                "Setting names use letters, digits, '_' and '.'; values are one line.",
            )
        pairs.append((name, text))
    return pairs


def postgres_args(settings: Mapping[str, str], what: str = "postgres") -> list[str]:
    """`-c name=value` for each setting, as the postgres server takes them."""
    args: list[str] = []
    for name, value in _setting_pairs(settings, what):
        args += ["-c", f"{name}={value}"]
    return args


def redis_args(settings: Mapping[str, str], what: str = "redis") -> list[str]:
    """`--name value` for each setting, as redis-server takes them."""
    args: list[str] = []
    for name, value in _setting_pairs(settings, what):
        args += [f"--{name}", value]
    return args


def container_spec(
    lab: str,
    service: str,
    password: str,
    instance: str | None = None,
    home: str = "",
    *,
    bind_ip: str = LOOPBACK,
    settings: Mapping[str, str] | None = None,
    replication_password: str = "",
    network: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` for one instance.

    A PostgreSQL primary of a replica gets `replication_password` (and the network).
    Raises ProviderError for an unknown kind, an unusable name or setting.
    """
    if service not in IMAGES:
        raise ProviderError(
            f"The docker provider cannot supply '{service}'.",
            f"It supplies: {', '.join(IMAGES)}.",
        )
    name = container_name(lab, instance or service)
    what = f"'{instance or service}'"
    settings = dict(settings or {})
    environment: dict[str, str] = {}
    command: list[str] | None = None
    if service == "postgres":
        environment = {"POSTGRES_PASSWORD": password}
        if replication_password:
            environment["SDTUTOR_REPLICATION_PASSWORD"] = replication_password
            settings = {**PRIMARY_SETTINGS, **settings}
        command = ["postgres", *postgres_args(settings, what)]
    elif service == "rabbitmq":
        if settings:
            raise ProviderError(
                f"The docker provider cannot pass settings to RabbitMQ ({what}).",
                "Remove `settings` from this instance in lab.yaml.",
            )
        environment = {"RABBITMQ_DEFAULT_USER": RABBITMQ_USER, "RABBITMQ_DEFAULT_PASS": password}
    else:
        # A lab's Redis is scratch space: no snapshots, no append-only file. The password
        # reaches redis-server through a config file the command writes from REDIS_PASSWORD.
        environment = {"REDIS_PASSWORD": password}
        command = [
            "sh",
            "-c",
            REDIS_SCRIPT,
            "sdtutor-redis",
            "--save",
            "",
            "--appendonly",
            "no",
            *redis_args(settings, what),
        ]
    spec: dict[str, Any] = {
        "image": IMAGES[service],
        "name": name,
        "labels": labels_for(lab, service, home),
        # None lets the engine pick a free host port.
        "ports": {port: (bind_ip, None) for port in SERVICE_PORTS[service]},
        "environment": environment,
        "command": command,
        "detach": True,
    }
    if network:
        spec["network"] = network
    return spec


def replica_spec(
    lab: str,
    instance: str,
    primary: str,
    password: str,
    replication_password: str,
    *,
    network: str,
    home: str = "",
    bind_ip: str = LOOPBACK,
    primary_settings: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create` for a streaming replica of `primary`.

    `password` is the primary's superuser password (the copy has the same roles). The
    replica runs with the primary's settings (a hot standby needs at least the primary's
    max_connections, max_prepared_transactions...), then its own; `recovery_min_apply_delay_ms`
    becomes recovery_min_apply_delay. Raises ProviderError for an unusable name or setting.
    """
    what = f"'{instance}'"
    own = dict(settings or {})
    delay = own.pop(REPLICA_DELAY_SETTING, "0")
    try:
        delay_ms = int(str(delay).strip())
    except ValueError:
        delay_ms = -1
    if delay_ms < 0:
        raise ProviderError(
            f"The replica {what} has {REPLICA_DELAY_SETTING}={delay!r}; "
            "it must be a whole number of milliseconds (0 or more)."
        )
    primary_host = container_name(lab, primary)
    conninfo = " ".join(
        [
            f"host={primary_host}",
            "port=5432",
            f"user={REPLICATION_ROLE}",
            f"passfile={REPLICA_PASSFILE}",
            f"application_name={instance}",
        ]
    )
    merged = {
        **PRIMARY_SETTINGS,
        **dict(primary_settings or {}),
        **own,
        "hot_standby": "on",
        "recovery_min_apply_delay": f"{delay_ms}ms",
        "primary_conninfo": conninfo,
    }
    return {
        "image": IMAGES["postgres"],
        "name": container_name(lab, instance),
        "labels": labels_for(lab, "postgres", home),
        "ports": {port: (bind_ip, None) for port in SERVICE_PORTS["postgres"]},
        "environment": {
            "POSTGRES_PASSWORD": password,
            "SDTUTOR_REPLICATION_PASSWORD": replication_password,
            "SDTUTOR_PRIMARY_HOST": primary_host,
            "PGPASSFILE": REPLICA_PASSFILE,
        },
        "entrypoint": ["sh", "-c", REPLICA_SCRIPT, "sdtutor-replica"],
        "command": postgres_args(merged, what),
        "user": "postgres",
        "network": network,
        "detach": True,
    }


def init_archive() -> bytes:
    """A tar holding the primary's init script, for `put_archive` into INIT_DIR."""
    data = INIT_SCRIPT.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(INIT_SCRIPT_NAME)
        info.size = len(data)
        info.mode = 0o644  # sourced (not run) by the entrypoint, as the postgres user
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def check_instances(instances: Sequence[InstanceSpec]) -> None:
    """Refuse, before Docker is touched, instances this provider cannot give.

    Raises ProviderError for an unknown kind, an unusable name, a replica of an unknown
    instance or of another kind, a replica of a replica, or an unusable setting.
    """
    by_name = {i.name: i for i in instances}
    for instance in instances:
        if instance.replica_of is None:
            if REPLICA_DELAY_SETTING in instance.settings:
                raise ProviderError(
                    f"'{instance.name}' sets {REPLICA_DELAY_SETTING}, "
                    "but only a replica (an instance with replica_of) takes it."
                )
            container_spec("lab", instance.kind, "", instance.name, settings=instance.settings)
            continue
        primary = by_name.get(instance.replica_of)
        if instance.kind != "postgres":
            raise ProviderError(
                f"The docker provider gives streaming replicas of PostgreSQL only, "
                f"and '{instance.name}' is a {instance.kind}."
            )
        if primary is None or primary.name == instance.name:
            raise ProviderError(
                f"'{instance.name}' is a replica of '{instance.replica_of}', "
                "which is not another instance of this lab.",
                f"The lab's instances are: {', '.join(by_name)}.",
            )
        if primary.kind != instance.kind or primary.replica_of is not None:
            raise ProviderError(
                f"'{instance.name}' is a replica of '{primary.name}', which is not a "
                "PostgreSQL primary (the docker provider does not chain replicas)."
            )
        replica_spec(
            "lab",
            instance.name,
            primary.name,
            "",
            "",
            network="net",
            primary_settings=primary.settings,
            settings=instance.settings,
        )


def endpoint_url(service: str, password: str, host_port: int, host: str = LOOPBACK) -> str:
    """The admin URL for a service published on `host`:`host_port`.

    Raises ProviderError for an unknown service.
    """
    secret = quote(password, safe="")
    if service == "postgres":
        return f"postgresql://postgres:{secret}@{host}:{host_port}/postgres"
    if service == "redis":
        return f"redis://:{secret}@{host}:{host_port}/0"
    if service == "rabbitmq":
        return f"amqp://{RABBITMQ_USER}:{secret}@{host}:{host_port}/%2F"
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


def engine_address() -> str:
    """Where the docker SDK looks for the engine: DOCKER_HOST, else the Docker CLI's
    current context (DOCKER_CONTEXT or `docker context use`), else the default socket."""
    default = "npipe:////./pipe/docker_engine" if os.name == "nt" else "unix:///var/run/docker.sock"
    return os.environ.get("DOCKER_HOST") or _context_host() or default


def _context_host() -> str:
    """The engine address of the Docker CLI's current context, where the installed SDK
    reads contexts in `from_env` (docker 7.2 and later); '' otherwise. Never raises."""
    try:
        from docker.context import ContextAPI  # costly import, only when Docker is used
    except ImportError:
        return ""
    from_context = getattr(ContextAPI, "kwargs_from_context", None)
    if from_context is None:
        return ""  # this SDK ignores contexts: it uses DOCKER_HOST or the default socket
    try:
        return str(from_context().get("base_url") or "")
    except Exception:
        return ""


def _is_local_host(host: str) -> bool:
    """Whether `host` (a name or an address, no brackets) is this machine's loopback."""
    host = host.strip().rstrip(".").lower()
    if not host or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def publish_address(address: str | None = None) -> tuple[str, str]:
    """(IP to publish ports on, host for URLs) for the engine at `address` (else DOCKER_HOST).

    A local engine (Unix socket, named pipe, or TCP/SSH to 127.0.0.1, ::1 or localhost)
    publishes on 127.0.0.1 only. A remote one publishes on all its addresses (its loopback
    is not reachable from here) and URLs name its host.
    """
    text = (engine_address() if address is None else address).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        # The SDK reads a bare `host:port` as tcp.
        scheme, rest = "tcp", text
    if scheme.lower() not in ("tcp", "http", "https", "ssh"):
        return LOOPBACK, LOOPBACK  # unix://, npipe://, http+unix://
    try:
        host = urlsplit(f"//{rest}").hostname or ""
    except ValueError:
        host = ""
    if _is_local_host(host):
        return LOOPBACK, LOOPBACK
    if ":" in host:
        return ALL_IPV6, f"[{host}]"
    return ALL_IPV4, host


def host_port(
    ports: dict[str, Any] | None, container_port: str, bind_ip: str = LOOPBACK
) -> int | None:
    """The host port published on `bind_ip` for `container_port`, from `container.ports`."""
    for binding in (ports or {}).get(container_port) or []:
        if binding.get("HostIp") == bind_ip and binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


def _env(attrs: dict[str, Any]) -> dict[str, str]:
    config = attrs.get("Config") or {}
    return dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)


def reusable_password(service: str, attrs: dict[str, Any], bind_ip: str = LOOPBACK) -> str | None:
    """The password of an existing container if it matches today's spec, else None.

    A container made with another image, or published anywhere but `bind_ip` (127.0.0.1
    for a local engine, all addresses for a remote one), is not reused.
    """
    config = attrs.get("Config") or {}
    if config.get("Image") != IMAGES.get(service):
        return None
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    for port in SERVICE_PORTS[service]:
        entries = bindings.get(port) or []
        if not entries or any(entry.get("HostIp") != bind_ip for entry in entries):
            return None
    env = _env(attrs)
    password: str | None = None
    if service == "postgres":
        password = env.get("POSTGRES_PASSWORD")
    elif service == "rabbitmq":
        if env.get("RABBITMQ_DEFAULT_USER") == RABBITMQ_USER:
            password = env.get("RABBITMQ_DEFAULT_PASS")
    else:
        password = env.get("REDIS_PASSWORD")
    return password or None


def spec_matches(spec: dict[str, Any], attrs: dict[str, Any]) -> bool:
    """Whether a container (`docker inspect` attrs) was made from `spec`.

    Compares the image, command, entrypoint, user, network, published addresses and every
    environment variable the spec sets; a container that differs is made again.
    """
    config = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    if config.get("Image") != spec["image"]:
        return False
    if spec.get("command") is not None and list(config.get("Cmd") or []) != spec["command"]:
        return False
    if spec.get("entrypoint") is not None and list(config.get("Entrypoint") or []) != list(
        spec["entrypoint"]
    ):
        return False
    if (config.get("User") or "") != spec.get("user", ""):
        return False
    env = _env(attrs)
    if any(env.get(key) != value for key, value in spec["environment"].items()):
        return False
    network = host.get("NetworkMode") or "default"
    if spec.get("network"):
        if network != spec["network"]:
            return False
    elif network not in ("default", "bridge"):
        return False
    bindings = host.get("PortBindings") or {}
    for port, (ip, _) in spec["ports"].items():
        entries = bindings.get(port) or []
        if not entries or any(entry.get("HostIp") != ip for entry in entries):
            return False
    return True


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


def is_standby(url: str) -> bool:
    """Whether the PostgreSQL server at `url` is in recovery (a standby); never raises."""
    import psycopg  # costly import, only once a lab has a replica

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except (psycopg.Error, OSError):
        return False
    return bool(row and row[0])


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


def pull_hint(image: str) -> str:
    """What to do when `image` cannot be pulled."""
    return (
        "Check the internet connection and that Docker can reach its registry "
        f"(try `docker pull {image}`), then try again."
    )


@contextlib.contextmanager
def _during(step: str, hint: str = RETRY_HINT) -> Iterator[None]:
    """Turn a docker or HTTP failure inside the block into a ProviderError naming `step`."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        translated = _translate(exc, step, hint)
        if translated is None:
            raise
        raise translated from exc


def spec_password(spec: dict[str, Any]) -> str:
    """The admin password a container spec gives its service."""
    env = spec["environment"]
    for key in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_DEFAULT_PASS"):
        if env.get(key):
            return str(env[key])
    return ""


SpecFromAttrs = Callable[[dict[str, Any]], dict[str, Any] | None]
"""What an existing container should look like, given its attrs (None: not reusable)."""


class DockerProvider(Provider):
    """Runs each service in a pinned official image on the Docker engine."""

    name: ClassVar[str] = "docker"
    description: ClassVar[str] = (
        "Pinned official images in Docker containers with random passwords, on 127.0.0.1 "
        "(on a remote engine's address when DOCKER_HOST names one)."
    )
    services: ClassVar[frozenset[str]] = frozenset({"postgres", "redis", "rabbitmq"})
    replicas: ClassVar[bool] = True
    restarts_servers: ClassVar[bool] = True

    def __init__(self) -> None:
        self._client: Any = None

    @classmethod
    def availability(cls, kinds: Collection[str] | None = None) -> Availability:
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
            elif "paramiko" in reason:
                fix = (
                    "The docker SDK needs paramiko for an ssh:// engine: pip install paramiko "
                    "(or reach the engine with tcp:// and TLS). " + FIX
                )
            return Availability(ok=False, detail=f"Docker: {reason}", fix=fix)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        detail = f"Docker Engine {version} at {engine_address()}"
        bind_ip, url_host = publish_address()
        if bind_ip != LOOPBACK:
            detail += (
                f"; a remote engine: lab services are published on {url_host} and reachable "
                "by anyone on that network, each with its own random password"
            )
        return Availability(
            ok=True, detail=detail, services=tuple(s for s in SERVICES if s in cls.services)
        )

    def start(
        self, lab: str, instances: Sequence[InstanceSpec], progress: Progress = no_progress
    ) -> dict[str, Endpoint]:
        """Start (or reuse) one container per instance and wait until each answers.

        Primaries start and answer before their replicas are made. Raises ProviderError
        when Docker fails or a service does not answer in time; containers (and the
        network) this call created are removed first (also on KeyboardInterrupt).
        """
        home, lab = lab_home(lab)
        bind_ip, url_host = publish_address()
        # Refuse unknown kinds, replicas and unusable names before touching Docker.
        check_instances(instances)
        for instance in instances:
            container_name(lab, instance.name)
        by_name = {i.name: i for i in instances}
        with_replicas = {i.replica_of for i in instances if i.replica_of}
        network = network_name(lab) if with_replicas else None
        client = self._connect()
        created: list[str] = []
        network_made = False
        try:
            if network:
                with _during(f"making the network {network}"):
                    network_made = self._ensure_network(client, lab, home, network)
            made: dict[str, dict[str, Any]] = {}  # instance -> the spec its container has
            endpoints: dict[str, Endpoint] = {}
            primaries = [i for i in instances if not i.replica_of]
            replicas = [i for i in instances if i.replica_of]
            # Replicas are made once their primaries answer: they copy a running server.
            for stage in (primaries, replicas):
                running: dict[str, Any] = {}
                for instance in stage:
                    on_network = instance.name in with_replicas or bool(instance.replica_of)
                    running[instance.name], made[instance.name] = self._start_container(
                        client,
                        lab,
                        home,
                        instance,
                        self._specs(
                            lab, home, instance, by_name, made, bind_ip, network, with_replicas
                        ),
                        created,
                        progress,
                        # A network made just now means containers attached before are stale.
                        renew=network_made and on_network,
                    )
                for name, container in running.items():
                    instance = by_name[name]
                    with _during(f"waiting for {instance.kind} ({name}) to answer"):
                        endpoints[name] = self._wait_ready(
                            lab,
                            instance.kind,
                            container,
                            spec_password(made[name]),
                            progress,
                            name,
                            bind_ip=bind_ip,
                            url_host=url_host,
                            replica_of=instance.replica_of,
                        )
            return endpoints
        except BaseException:
            self._discard(client, lab, created, network if network_made else None)
            raise

    def stop(self, lab: str, endpoints: dict[str, Endpoint]) -> None:
        """Remove every container (and network) labelled with `lab` and this home.

        A missing one is fine. Raises ProviderError when Docker cannot be reached or
        something cannot be removed.
        """
        home, lab = lab_home(lab)
        self._remove_labelled(
            ["sdtutor=1", f"sdtutor.lab={lab}", f"sdtutor.home={home}"], f"lab {lab}"
        )

    def stop_all(self) -> list[str]:
        """Remove every container and network this home made; returns their names.

        Raises ProviderError when Docker cannot be reached or something cannot be removed.
        """
        from sdtutor.services.names import home_id

        return self._remove_labelled(["sdtutor=1", f"sdtutor.home={home_id()}"], "sdtutor")

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _specs(
        lab: str,
        home: str,
        instance: InstanceSpec,
        by_name: dict[str, InstanceSpec],
        made: dict[str, dict[str, Any]],
        bind_ip: str,
        network: str | None,
        with_replicas: set[str],
    ) -> tuple[SpecFromAttrs, Callable[[], dict[str, Any]]]:
        """(the spec an existing container must match, given its attrs; a fresh spec)."""
        if instance.replica_of:
            primary = by_name[instance.replica_of]
            env = made[primary.name]["environment"]
            assert network is not None

            def replica() -> dict[str, Any]:
                # The copy has the primary's roles: its superuser password is the primary's.
                return replica_spec(
                    lab,
                    instance.name,
                    primary.name,
                    env["POSTGRES_PASSWORD"],
                    env["SDTUTOR_REPLICATION_PASSWORD"],
                    network=network,
                    home=home,
                    bind_ip=bind_ip,
                    primary_settings=primary.settings,
                    settings=instance.settings,
                )

            return (lambda attrs: replica()), replica

        is_primary = instance.name in with_replicas

        def build(password: str, replication: str) -> dict[str, Any]:
            return container_spec(
                lab,
                instance.kind,
                password,
                instance.name,
                home,
                bind_ip=bind_ip,
                settings=instance.settings,
                replication_password=replication,
                network=network if is_primary else None,
            )

        def from_attrs(attrs: dict[str, Any]) -> dict[str, Any] | None:
            password = reusable_password(instance.kind, attrs, bind_ip)
            replication = _env(attrs).get("SDTUTOR_REPLICATION_PASSWORD", "") if is_primary else ""
            if password is None or (is_primary and not replication):
                return None
            return build(password, replication)

        return from_attrs, lambda: build(new_password(), new_password() if is_primary else "")

    def _connect(self) -> Any:
        """The docker client, made on first use; raises ProviderError when there is no engine."""
        if self._client is None:
            try:
                import docker  # costly import, only when a lab uses Docker

                self._client = docker.from_env()
            except Exception as exc:
                raise ProviderError(f"Cannot reach Docker: {short_reason(exc)}.", FIX) from exc
        return self._client

    def _start_container(
        self,
        client: Any,
        lab: str,
        home: str,
        instance: InstanceSpec,
        specs: tuple[SpecFromAttrs, Callable[[], dict[str, Any]]],
        created: list[str],
        progress: Progress,
        renew: bool = False,
    ) -> tuple[Any, dict[str, Any]]:
        """Reuse the instance's container, or pull, create and start a new one (its name
        goes on `created`); returns the container and its spec."""
        from_attrs, fresh = specs
        service, name = instance.kind, container_name(lab, instance.name)
        with _during(f"looking for the container {name}"):
            container, spec = self._reuse(
                client, lab, service, instance.name, home, from_attrs, renew
            )
        if container is not None and spec is not None:
            return container, spec
        image = IMAGES[service]
        with _during(f"pulling {image}", pull_hint(image)):
            self._ensure_image(client, image, progress)
        spec = fresh()
        with _during(f"creating the container {name}"):
            created.append(name)
            container = client.containers.create(**spec)
        if "SDTUTOR_REPLICATION_PASSWORD" in spec["environment"] and not instance.replica_of:
            with _during(f"adding the replication setup to {name}"):
                container.put_archive(INIT_DIR, init_archive())
        if instance.replica_of:
            progress(
                f"Copying '{instance.replica_of}' to start the replica '{instance.name}'", None
            )
        else:
            progress(f"Starting {service}", None)
        with _during(f"starting the container {name}"):
            container.start()
        return container, spec

    @staticmethod
    def _ensure_network(client: Any, lab: str, home: str, name: str) -> bool:
        """Make the lab's network unless it exists; True when this call made it."""
        import docker.errors

        labels = network_labels(lab, home)
        try:
            network = client.networks.get(name)
        except docker.errors.NotFound:
            client.networks.create(name, driver="bridge", labels=labels)
            return True
        found = (network.attrs or {}).get("Labels") or {}
        if network.name != name or any(found.get(k) != v for k, v in labels.items()):
            raise ProviderError(
                f"A Docker network named {name} exists, but sdtutor did not create it.",
                f"Remove it yourself (docker network rm {name}), then try again.",
            )
        return False

    def _reuse(
        self,
        client: Any,
        lab: str,
        service: str,
        instance: str,
        home: str,
        from_attrs: SpecFromAttrs,
        renew: bool = False,
    ) -> tuple[Any, dict[str, Any] | None]:
        """An existing container made from today's spec (started if stopped) and that spec,
        or (None, None) after removing one made otherwise; `renew` always removes it."""
        import docker.errors

        name = container_name(lab, instance)
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            return None, None
        labels = container.labels or {}
        if any(labels.get(key) != value for key, value in labels_for(lab, service, home).items()):
            raise ProviderError(
                f"A container named {name} exists, but sdtutor did not create it.",
                f"Rename or remove it yourself (docker rm -f {name}), then try again.",
            )
        spec = None if renew else from_attrs(container.attrs)
        if (
            spec is None
            or not spec_matches(spec, container.attrs)
            or container.status in ("created", "dead", "removing")
        ):
            # Ours, but made with another image or settings (or its primary is new), or
            # never started: a start cut short may not have given it its init script.
            container.remove(force=True, v=True)
            return None, None
        if container.status == "paused":
            container.unpause()
        elif container.status == "exited":
            container.start()
        return container, spec

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
                    f"Docker could not pull {image}: {event['error']}", pull_hint(image)
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
        *,
        bind_ip: str = LOOPBACK,
        url_host: str = LOOPBACK,
        replica_of: str | None = None,
    ) -> Endpoint:
        """Poll until the service answers; raises ProviderError (with its log) on timeout.

        A replica must also answer as a standby.
        """
        name = container_name(lab, instance or service)
        timeout = REPLICA_READY_TIMEOUT if replica_of else READY_TIMEOUT[service]
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
            port = host_port(container.ports, SERVICE_PORTS[service][0], bind_ip)
            url = endpoint_url(service, password, port, url_host) if port is not None else ""
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
        if replica_of:
            if not is_standby(url):
                raise ProviderError(
                    f"The replica {name} answers, but not as a standby of '{replica_of}'.",
                    self._log_hint(container),
                )
            handle["replica_of"] = replica_of
        if service == "rabbitmq":
            management = host_port(container.ports, "15672/tcp", bind_ip)
            if management is not None:
                handle["management_url"] = f"http://{url_host}:{management}/"
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
    def _discard(client: Any, lab: str, names: list[str], network: str | None = None) -> None:
        """Remove the containers (and network) a failed start created; never raises."""
        for name in names:
            try:
                container = client.containers.get(name)
                if (container.labels or {}).get("sdtutor.lab") == lab:
                    container.remove(force=True, v=True)
            except Exception:
                pass  # the error that made us clean up is the one to report
        if network:
            try:
                found = client.networks.get(network)
                if ((found.attrs or {}).get("Labels") or {}).get("sdtutor.lab") == lab:
                    found.remove()
            except Exception:
                pass

    def _remove_labelled(self, label_filter: list[str], what: str) -> list[str]:
        """Remove all containers, then networks, matching every label in `label_filter`;
        returns the container names and `network NAME` for each network."""
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
        try:
            networks = client.networks.list(filters={"label": label_filter})
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise ProviderError(
                f"Docker could not list the networks of {what}: {_explain(exc)}", FIX
            ) from exc
        for network in networks:
            try:
                network.remove()
            except docker.errors.NotFound:
                pass
            except (docker.errors.DockerException, requests.RequestException) as exc:
                failed.append(f"network {network.name} ({_explain(exc)})")
                continue
            removed.append(f"network {network.name}")
        if failed:
            raise ProviderError(
                f"Docker could not remove {', '.join(failed)}.",
                "Remove them with `docker rm -f NAME` (`docker network rm NAME` for a "
                "network), or try again.",
            )
        return removed


__all__ = [
    "IMAGES",
    "READY_TIMEOUT",
    "REPLICATION_ROLE",
    "SERVICE_PORTS",
    "DockerProvider",
    "check_instances",
    "container_name",
    "container_spec",
    "endpoint_url",
    "engine_address",
    "host_port",
    "init_archive",
    "is_standby",
    "lab_home",
    "labels_for",
    "network_labels",
    "network_name",
    "new_password",
    "postgres_args",
    "probe",
    "publish_address",
    "pull_fraction",
    "replica_spec",
    "reusable_password",
    "short_reason",
    "spec_matches",
    "split_image",
    "tail_lines",
    "update_layers",
]
