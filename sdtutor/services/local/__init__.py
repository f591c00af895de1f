"""Private servers from binaries on this machine: one class per kind, one shape.

`LocalPostgres`, `LocalRedis` and `LocalRabbitMQ` each run one server per
(SDTUTOR_HOME, kind, name) on a free 127.0.0.1 port with a random password; as root they
run as the account `sdtutor-svc` with data under /var/lib/sdtutor (see `account`).
"""

from sdtutor.services.local.base import LocalServer
from sdtutor.services.local.postgres import LocalPostgres
from sdtutor.services.local.rabbitmq import LocalRabbitMQ
from sdtutor.services.local.redis import LocalRedis

SERVERS: dict[str, type[LocalServer]] = {
    cls.kind: cls for cls in (LocalPostgres, LocalRedis, LocalRabbitMQ)
}
"""The server class of each kind."""


def server_class(kind: str) -> type[LocalServer]:
    """The local server class for a kind; KeyError for a kind with none."""
    return SERVERS[kind]


def existing() -> list[LocalServer]:
    """Every server this SDTUTOR_HOME has a state file for (running or not)."""
    from sdtutor import locations

    found: list[LocalServer] = []
    services = locations.services_dir()
    for kind, cls in SERVERS.items():
        for state in sorted(services.glob(f"{kind}-*.json")):
            name = state.stem[len(kind) + 1 :]
            try:
                found.append(cls(name))
            except ValueError:
                continue
    return found


__all__ = [
    "SERVERS",
    "LocalPostgres",
    "LocalRabbitMQ",
    "LocalRedis",
    "LocalServer",
    "existing",
    "server_class",
]
