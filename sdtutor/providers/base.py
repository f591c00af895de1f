"""The provider interface: how a lab gets its services.

A provider hands out *servers*; the lab runtime then creates the lab's own namespace on
each one (database `sdtutor_<slug>`, key prefix `sdtutor:<slug>:`, names under
`sdtutor.<slug>.`) and removes exactly that on `lab stop`. Providers differ only in where
the server comes from: a container, a private local instance, or a URL the learner gave.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    """A server a provider made available: an admin URL and provider-specific handle."""

    service: str
    url: str
    handle: dict[str, Any] = field(default_factory=dict)


class Provider(ABC):
    """Starts and stops the servers a lab needs.

    Capabilities are class attributes so a lab can be refused before anything starts.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    services: ClassVar[frozenset[str]]
    """Services this provider can supply."""
    postgres_instances: ClassVar[int] = 1
    """How many separate PostgreSQL servers one lab may have (replication needs 2)."""
    restarts_servers: ClassVar[bool] = False
    """Whether it may restart a server with new settings (two-phase commit needs it)."""

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Say whether this provider can work here; must be cheap and never raise."""

    @abstractmethod
    def start(
        self, lab: str, services: list[str], progress: Progress = no_progress
    ) -> dict[str, Endpoint]:
        """Make each service available for `lab`, waiting until it answers.

        Raises ProviderError when a service cannot be started or reached. Partial work
        is undone before raising (and on KeyboardInterrupt).
        """

    @abstractmethod
    def stop(self, lab: str, endpoints: dict[str, Endpoint]) -> None:
        """Release what `start` created for `lab`, and nothing else.

        Raises ProviderError when something could not be removed.
        """

    def stop_all(self) -> list[str]:
        """Stop everything this provider runs for sdtutor; returns what it stopped."""
        return []


__all__ = ["SERVICES", "Availability", "Endpoint", "Progress", "Provider", "no_progress"]
