"""The service-kind interface: everything about one kind of server, in one module.

A kind (PostgreSQL, Redis, RabbitMQ) knows how to make a lab's namespace on a server
(its role or user, its database, prefix or vhost, the marker that says this home made
them), how to seed it and restore the seeded state, how to remove exactly that, how to
tell that a server answers, and how to open a shell on it. Providers, the lab runtime,
the proofs, `lab shell` and `doctor` loop over kinds; none of them names one.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sdtutor.errors import ProviderError, UsageError
from sdtutor.providers.base import Progress, no_progress
from sdtutor.services.names import Names

if TYPE_CHECKING:
    from sdtutor.content.models import LabSpec


@dataclass
class Access:
    """What a lab's namespace on one server gives the learner (and the checker).

    `url` is the lab's own login, never an admin's; it goes into `lab info`, which is the
    learner's to use. `prefix` is what every name the learner makes must start with.
    """

    url: str
    prefix: str = ""
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """For the lab's state file."""
        return {"url": self.url, "prefix": self.prefix, "env": self.env, "note": self.note}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Access:
        """From the lab's state file (older files kept a bare URL)."""
        if isinstance(data, str):
            return cls(data)
        return cls(
            str(data["url"]),
            str(data.get("prefix", "")),
            {str(k): str(v) for k, v in (data.get("env") or {}).items()},
            str(data.get("note", "")),
        )


@dataclass
class Target:
    """One instance of a lab on one server: what a kind needs to act there."""

    admin_url: str
    names: Names
    instance: str
    lab: LabSpec
    handle: dict[str, Any] = field(default_factory=dict)
    """Provider specifics (a local server's name, a container), for kinds that need them."""

    @property
    def setup(self) -> Path | None:
        """The instance's seed file from lab.yaml, if any."""
        name = self.lab.setup.get(self.instance)
        return self.lab.path / name if name else None


class ServiceKind(ABC):
    """One kind of server. Methods raise ProviderError (server) or LabError (lab content)."""

    name: ClassVar[str]
    title: ClassVar[str]
    url_variable: ClassVar[str]
    """The environment variable that names an external server of this kind."""
    learner_env: ClassVar[str]
    """The variable learner code reads this kind's URL from (DATABASE_URL, ...)."""
    keeps_template: ClassVar[bool] = False
    """Whether `lab stop` keeps a seeded copy that the next start copies (--purge drops it)."""
    shell_blurb: ClassVar[str] = "a prompt on the lab's service"
    """What `lab shell` opens on this kind, in a few words."""
    prefix_env: ClassVar[str] = ""
    """The variable learner code reads the lab's name prefix from, for kinds that share
    a server's namespace (Redis keys, RabbitMQ names)."""
    suffixes: ClassVar[tuple[str, ...]] = ()
    """Workspace files this kind can apply (`lab shell -f`, `apply:` in lab.yaml)."""

    @abstractmethod
    def probe(self, url: str) -> bool:
        """Whether a server answers a real request at `url`; never raises."""

    @abstractmethod
    def provision(self, target: Target, fresh: bool, progress: Progress = no_progress) -> Access:
        """Make (or find) the lab's seeded namespace; `fresh` starts it from the seed again.

        Seeds once into a template where the kind can keep one, and copies it after.
        """

    @abstractmethod
    def teardown(self, target: Target, purge: bool = False) -> None:
        """Remove the lab's namespace, after checking its marker says this home made it.

        With `purge`, also the seeded template and the lab's login.
        """

    @abstractmethod
    def shell(
        self, access: Access, prefer_native: bool = True, target: Target | None = None
    ) -> int:
        """An interactive prompt on the lab's namespace; returns an exit code.

        `target` (with the admin URL, never shown) lets a kind list what the lab's own
        login cannot.
        """

    def await_replica(self, primary_url: str, replica_url: str, timeout: float) -> None:
        """Wait until a replica has replayed everything its primary holds now (the lab's
        login and seed included). Raises ProviderError after `timeout` seconds."""
        raise UsageError(f"sdtutor cannot make a replica of {self.title}.")

    def run_file(self, access: Access, path: Path, prefer_native: bool = True) -> None:
        """Apply a workspace file, showing what each statement did (`lab shell -f`).

        `prefer_native` False (`--builtin`) uses sdtutor's own runner even where the
        server's own client (psql) is installed. Raises typer.Exit(1) after showing a
        refused statement, LabError when the file is missing.
        """
        raise UsageError(f"`lab shell -f` does not apply files to {self.title}.")

    def apply_file(
        self,
        access: Access,
        path: Path,
        prefer_native: bool = True,
        notes: list[str] | None = None,
    ) -> int:
        """Apply a workspace file quietly; returns how many statements ran.

        Takes the same files as run_file. What the learner should know about the apply
        (lines sdtutor's own runner skipped) is appended to `notes` when given. Raises
        LabError (a subclass names file and line) when the server refuses a statement.
        """
        raise UsageError(f"sdtutor does not apply files to {self.title}.")


def refuse_foreign(names: Names, what: str, marker: str | None) -> None:
    """Raise ProviderError when `what` exists (a marker was found, even an empty one) and
    its marker does not say this home made it; sdtutor never touches such a thing."""
    if marker is not None and not names.owns(marker):
        raise ProviderError(
            f"The {what} exists, but this sdtutor home did not make it "
            f"(its marker: {marker or 'none'}). sdtutor leaves it alone.",
            "Use the SDTUTOR_HOME that made it, or remove it yourself if you know it is yours.",
        )


def url_with_login(url: str, user: str, password: str, path: str | None = None) -> str:
    """The same server URL as another login (and, if given, with another path)."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, path=parts.path if path is None else path))


_KINDS: dict[str, str] = {
    "postgres": "sdtutor.services.postgres:PostgresKind",
    "redis": "sdtutor.services.redis:RedisKind",
    "rabbitmq": "sdtutor.services.rabbitmq:RabbitMQKind",
}
KIND_NAMES: tuple[str, ...] = tuple(_KINDS)


def kind(name: str) -> ServiceKind:
    """The kind called `name` (only its module is imported); UsageError if unknown."""
    try:
        module_name, class_name = _KINDS[name].split(":")
    except KeyError:
        raise UsageError(
            f"There is no service kind called '{name}'.",
            f"Labs can use: {', '.join(KIND_NAMES)}.",
        ) from None
    cls: type[ServiceKind] = getattr(importlib.import_module(module_name), class_name)
    return cls()


__all__ = [
    "KIND_NAMES",
    "Access",
    "ServiceKind",
    "Target",
    "kind",
    "refuse_foreign",
    "url_with_login",
]
