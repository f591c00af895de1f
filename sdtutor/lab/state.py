"""A lab's runtime state: which provider, which servers, where the workspace is.

Kept in SDTUTOR_HOME/labs/<slug>.json, readable by the user only: it holds service
passwords, which never go into the progress store or exports.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sdtutor import locations
from sdtutor.errors import LabError
from sdtutor.providers.base import Endpoint
from sdtutor.services.base import Access


@dataclass
class LabState:
    """What `lab start` set up, so later commands can find and remove it."""

    topic: str
    provider: str
    workspace: str
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    """The servers, by instance name (admin URLs: never shown, never given to learners)."""
    access: dict[str, Access] = field(default_factory=dict)
    """The lab's own logins and prefixes, by instance name: the learner's to use."""
    started_at: str = ""

    @property
    def urls(self) -> dict[str, str]:
        """The lab's URLs by instance name (what `lab info` shows)."""
        return {name: a.url for name, a in self.access.items()}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["endpoints"] = {k: asdict(v) for k, v in self.endpoints.items()}
        data["access"] = {k: v.to_json() for k, v in self.access.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        endpoints = {k: Endpoint(**v) for k, v in data.get("endpoints", {}).items()}
        # Files written before 0.2 kept bare URLs under "urls".
        raw = data.get("access") or data.get("urls") or {}
        access = {k: Access.from_json(v) for k, v in raw.items()}
        return cls(
            topic=data["topic"],
            provider=data["provider"],
            workspace=data["workspace"],
            endpoints=endpoints,
            access=access,
            started_at=data.get("started_at", ""),
        )


def state_path(slug: str) -> Path:
    """Where a lab's state lives."""
    return locations.labs_state_dir() / f"{slug}.json"


def load(slug: str) -> LabState | None:
    """The lab's state, or None when it is not started."""
    path = state_path(slug)
    try:
        return LabState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise LabError(
            f"The lab's state file {path} is damaged.",
            f"Run `sdtutor lab stop {slug}` to clean up, then start the lab again.",
        ) from None


def save(state: LabState) -> None:
    """Write the state atomically, readable by the user only."""
    path = state_path(state.topic)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state.to_json(), fh, indent=2)
    os.replace(tmp, path)


def remove(slug: str) -> None:
    """Forget the lab's state."""
    state_path(slug).unlink(missing_ok=True)


def _kept_path(slug: str) -> Path:
    return locations.labs_state_dir() / "kept" / f"{slug}.json"


def keep(state: LabState) -> None:
    """Remember where a stopped lab's seeded copy stays (its servers, no logins), so
    `lab stop --all` can remove it too."""
    path = _kept_path(state.topic)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = LabState(state.topic, state.provider, state.workspace, dict(state.endpoints))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(kept.to_json(), fh, indent=2)
    os.replace(tmp, path)


def kept() -> list[LabState]:
    """Stopped labs whose seeded copies stay on their servers (unreadable records skipped)."""
    folder = locations.labs_state_dir() / "kept"
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            found.append(LabState.from_json(json.loads(path.read_text())))
    return found


def forget_kept(slug: str) -> None:
    """The seeded copy is gone (purged): forget where it was."""
    _kept_path(slug).unlink(missing_ok=True)


def all_started() -> list[str]:
    """Slugs of every lab with state on disk."""
    folder = locations.labs_state_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


@contextlib.contextmanager
def exclusive(slug: str, action: str) -> Iterator[None]:
    """Hold the lab's lock; a second terminal gets a clear message instead of a race."""
    folder = locations.labs_state_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / f"{slug}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                fh.seek(0)
                holder = fh.read().strip() or "another sdtutor"
                raise LabError(
                    f"The {slug} lab is busy: {holder} is running in another terminal.",
                    f"Wait for it to finish, then run `sdtutor lab {action} {slug}` again.",
                ) from None
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(f"`sdtutor lab {action}` (pid {os.getpid()})")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


__all__ = [
    "LabState",
    "all_started",
    "exclusive",
    "forget_kept",
    "keep",
    "kept",
    "load",
    "remove",
    "save",
    "state_path",
]
