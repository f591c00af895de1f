"""Every name a lab creates on a server, tied to this learner's home id.

Thirty students can share one class server and the test suite can share a learner's
machine: each SDTUTOR_HOME has a short random id, kept in the home, and every database,
role, key prefix, vhost and user a lab creates carries it.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from sdtutor import locations

ID_FILE = "home-id"
_ID = re.compile(r"[0-9a-f]{8}\Z")


def home_id() -> str:
    """This home's id: 8 hex digits, made on first use and kept in SDTUTOR_HOME."""
    path = locations.home() / ID_FILE
    try:
        value = path.read_text().strip()
        if _ID.match(value):
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(4)
    tmp = path.with_name(f"{ID_FILE}.{os.getpid()}.tmp")
    tmp.write_text(value + "\n")
    try:
        # Two terminals may race here: the first link wins and both read it back.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    value = path.read_text().strip()
    if not _ID.match(value):
        raise ValueError(f"{path} does not hold a home id")
    return value


@dataclass(frozen=True)
class Names:
    """The names of one lab's things, for one home."""

    home: str
    slug: str

    @classmethod
    def for_lab(cls, slug: str) -> Names:
        """The names of `slug` for the current home."""
        return cls(home_id(), slug)

    @property
    def database(self) -> str:
        """PostgreSQL database (also the lab's login role)."""
        return f"sdtutor_{self.home}_{self.slug.replace('-', '_')}"

    @property
    def role(self) -> str:
        """The lab's login role (PostgreSQL), ACL user (Redis) and user (RabbitMQ)."""
        return self.database

    @property
    def template(self) -> str:
        """The seeded template the lab's database is copied from."""
        return self.database + "_tpl"

    @property
    def key_prefix(self) -> str:
        """Redis keys of the lab."""
        return f"sdtutor:{self.home}:{self.slug}:"

    @property
    def marker_key(self) -> str:
        """A Redis key outside the lab's prefix (so learner code cannot delete it)."""
        return f"sdtutor:{self.home}:labs:{self.slug}"

    @property
    def vhost(self) -> str:
        """The lab's RabbitMQ vhost, where the server lets us make one."""
        return f"sdtutor.{self.home}.{self.slug}"

    @property
    def amqp_prefix(self) -> str:
        """Names of exchanges and queues when the lab shares a vhost."""
        return self.vhost + "."

    def marker(self, state: str = "") -> str:
        """The text that says this home made a thing (and, optionally, its state)."""
        return f"sdtutor lab {self.slug}; home {self.home}" + (f"; {state}" if state else "")

    def owns(self, marker: str | None) -> bool:
        """Whether a marker found on a server says this home made the thing."""
        return bool(marker) and str(marker).startswith(self.marker())


__all__ = ["Names", "home_id"]
