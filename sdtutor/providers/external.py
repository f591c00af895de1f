"""The external provider: servers the learner already has, given by URL.

Nothing is started or stopped here; the lab runtime keeps each lab inside its own
namespace on these servers and removes only that.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from sdtutor.errors import ProviderError
from sdtutor.providers.base import Availability, Endpoint, Progress, Provider, no_progress

if TYPE_CHECKING:
    from sdtutor.content.models import InstanceSpec

URL_VARIABLES = {
    "postgres": "SDTUTOR_POSTGRES_URL",
    "redis": "SDTUTOR_REDIS_URL",
    "rabbitmq": "SDTUTOR_AMQP_URL",
}


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


class ExternalProvider(Provider):
    """Servers given by SDTUTOR_POSTGRES_URL, SDTUTOR_REDIS_URL and SDTUTOR_AMQP_URL."""

    name = "external"
    description = "servers you already run, given by URL"
    services = frozenset(URL_VARIABLES)
    separate_servers = False

    @classmethod
    def availability(cls, kinds: Collection[str] | None = None) -> Availability:
        given = tuple(s for s, var in URL_VARIABLES.items() if os.environ.get(var))
        if not given:
            return Availability(
                False,
                "no server URLs set",
                "Set SDTUTOR_POSTGRES_URL (and SDTUTOR_REDIS_URL, SDTUTOR_AMQP_URL for labs "
                "that need them), e.g. postgresql://postgres@127.0.0.1:5432/postgres.",
            )
        detail = ", ".join(f"{s} at {redact(os.environ[URL_VARIABLES[s]])}" for s in given)
        return Availability(True, detail, services=given)

    def start(
        self, lab: str, instances: Sequence[InstanceSpec], progress: Progress = no_progress
    ) -> dict[str, Endpoint]:
        endpoints = {}
        for instance in instances:
            var = URL_VARIABLES[instance.kind]
            url = os.environ.get(var)
            if not url:
                raise ProviderError(
                    f"The external provider needs {var} for this lab's {instance.kind}.",
                    f"Set {var} to the URL of a {instance.kind} server you can use.",
                )
            endpoints[instance.name] = Endpoint(instance.kind, url)
        return endpoints

    def stop(self, lab: str, endpoints: dict[str, Endpoint]) -> None:
        """Nothing to stop: the servers are not ours."""


__all__ = ["URL_VARIABLES", "ExternalProvider", "redact"]
