"""The provider interface: how a lab gets its servers.

A provider hands out one *server* per instance a lab names (`primary`, `replica`,
`cache`...); the lab runtime then makes the lab's own namespace on each through its
service kind (sdtutor.services) and removes exactly that on `lab stop`. Providers differ
only in where a server comes from: a container, a private local instance, or a URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from sdtutor.content.models import InstanceSpec

SERVICES: tuple[str, ...] = ("postgres", "redis", "rabbitmq")

Progress = Callable[[str, float | None], None]
"""Reports a step: its description and, when known, the fraction done (0..1)."""


def no_progress(step: str, fraction: float | None = None) -> None:
    """A progress callback that shows nothing."""


@dataclass(frozen=True)
class Availability:
    """Whether a provider works on this machine, and how to fix it if not."""

    ok: bool
    detail: str
    fix: str = ""
    services: tuple[str, ...] = ()


@dataclass
class Endpoint:
    """A server a provider made available: its kind, an admin URL, provider specifics."""

    service: str
    """The server's kind (postgres, redis, rabbitmq)."""
    url: str
    handle: dict[str, Any] = field(default_factory=dict)


class Provider(ABC):
    """Starts and stops the servers a lab needs.

    Capabilities are class attributes so a lab can be refused before anything starts.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    services: ClassVar[frozenset[str]]
    """Kinds of server this provider can supply."""
    replicas: ClassVar[bool] = False
    """Whether it can give a streaming replica of another instance."""
    separate_servers: ClassVar[bool] = True
    """Whether two instances of one kind get two servers (external: one URL per kind)."""
    restarts_servers: ClassVar[bool] = False
    """Whether it may restart a server with new settings (two-phase commit needs it)."""

    @classmethod
    @abstractmethod
    def availability(cls, kinds: Collection[str] | None = None) -> Availability:
        """Say whether this provider can work here (for `kinds`, else for any kind); must
        be cheap and never raise."""

    @abstractmethod
    def start(
        self, lab: str, instances: Sequence[InstanceSpec], progress: Progress = no_progress
    ) -> dict[str, Endpoint]:
        """Make a server available for each instance of `lab`, waiting until it answers.

        Returns the endpoints by instance name.

        Raises ProviderError when a service cannot be started or reached. Partial work
        is undone before raising (and on KeyboardInterrupt).
        """

    @abstractmethod
    def stop(self, lab: str, endpoints: dict[str, Endpoint]) -> None:
        """Release what `start` created for `lab` (endpoints by instance), nothing else.

        Raises ProviderError when something could not be removed.
        """

    def stop_all(self) -> list[str]:
        """Stop everything this provider runs for sdtutor; returns what it stopped."""
        return []


__all__ = ["SERVICES", "Availability", "Endpoint", "Progress", "Provider", "no_progress"]
