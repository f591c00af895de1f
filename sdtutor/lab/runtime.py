"""Lab lifecycle: start, info, check, hint, solution, reset, stop.

The front ends call these; they print nothing themselves. Every step that creates
something is undone when a later step fails or the learner presses Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdtutor import locations
from sdtutor.content.models import LabSpec
from sdtutor.errors import LabError, ProviderError
from sdtutor.lab import postgres, state
from sdtutor.lab.results import CheckResult
from sdtutor.lab.state import LabState
from sdtutor.progress.store import ProgressStore, now
from sdtutor.providers import check_supports, provider_class, select
from sdtutor.providers.base import Endpoint, Progress, no_progress
from sdtutor.topics import Topic

BACKUP_DIR = ".sdtutor-backup"


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Let a clean-up finish even if Ctrl-C is pressed again."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _workspace_files(lab: LabSpec) -> list[tuple[Path, str]]:
    """(source, name) of every file the workspace starts with."""
    files = [(lab.readme, "README.md")]
    files += [(lab.starter / name, name) for name in lab.workspace]
    return files


def _copy_files(lab: LabSpec, workspace: Path, overwrite: bool) -> list[str]:
    """Copy the starting files into the workspace; returns the names written."""
    written = []
    for source, name in _workspace_files(lab):
        target = workspace / name
        if target.exists() and not overwrite:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(name)
    return written


def backup_workspace(lab: LabSpec, workspace: Path) -> Path | None:
    """Keep the learner's files aside before they are overwritten; returns the folder."""
    changed = []
    for source, name in _workspace_files(lab):
        target = workspace / name
        if target.exists() and target.read_bytes() != source.read_bytes():
            changed.append(name)
    if not changed:
        return None
    folder = workspace / BACKUP_DIR / time.strftime("%Y%m%d-%H%M%S")
    for name in changed:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(workspace / name, folder / name)
    return folder


def _setup_services(
    lab: LabSpec, slug: str, endpoints: dict[str, Endpoint], progress: Progress, fresh: bool
) -> dict[str, str]:
    """Create (or find) the lab's own namespace on each server; returns the lab's URLs."""
    urls: dict[str, str] = {}
    for service, endpoint in endpoints.items():
        if service != "postgres":
            raise LabError(f"This version of sdtutor cannot set up {service} for a lab yet.")
        dbname = postgres.database_name(slug)
        url = postgres.with_database(endpoint.url, dbname)
        if fresh or postgres.database_state(endpoint.url, dbname) != "seeded":
            progress(f"Creating database {dbname}", None)
            postgres.create_database(endpoint.url, dbname)
            setup = lab.setup.get("postgres")
            if setup:
                postgres.run_setup(url, lab.path / setup, progress)
            postgres.mark_seeded(endpoint.url, dbname)
        urls[service] = url
    return urls


def _teardown_services(lab_state: LabState) -> None:
    """Drop the lab's namespaces; a server that is gone has nothing left to drop."""
    for service, endpoint in lab_state.endpoints.items():
        if service == "postgres":
            with contextlib.suppress(ProviderError):
                postgres.drop_database(endpoint.url, postgres.database_name(lab_state.topic))


def start(
    topic: Topic,
    lab: LabSpec,
    provider_name: str | None = None,
    workspace: Path | None = None,
    progress: Progress = no_progress,
) -> tuple[LabState, bool]:
    """Start a lab (or bring a stopped one back); returns its state and whether it is new.

    Raises ProviderError / LabError with what to do; on any failure or Ctrl-C, what this
    call created is removed again.
    """
    slug = topic.slug
    with state.exclusive(slug, "start"):
        existing = state.load(slug)
        if existing and provider_name and existing.provider != provider_name:
            raise LabError(
                f"The {slug} lab is already set up with the {existing.provider} provider.",
                f"Run `sdtutor lab stop {slug}` first to switch to {provider_name}.",
            )
        if existing:
            provider = provider_class(existing.provider)()
            check_supports(type(provider), list(lab.services))
        else:
            provider = select(provider_name, list(lab.services))
        with ProgressStore() as store:
            remembered = store.workspace(slug)
        ws = (
            Path(
                workspace
                or (existing.workspace if existing else None)
                or remembered
                or locations.default_workspace(topic.dirname)
            )
            .expanduser()
            .resolve()
        )
        created_ws = not ws.exists()
        endpoints: dict[str, Endpoint] = {}
        urls: dict[str, str] = {}
        try:
            progress(f"Starting services with the {provider.name} provider", None)
            endpoints = provider.start(slug, list(lab.services), progress)
            urls = _setup_services(lab, slug, endpoints, progress, fresh=existing is None)
            ws.mkdir(parents=True, exist_ok=True)
            _copy_files(lab, ws, overwrite=False)
            lab_state = LabState(slug, provider.name, str(ws), endpoints, urls, now())
            state.save(lab_state)
        except BaseException:
            with _no_interrupts():
                if existing is None:
                    _teardown_services(LabState(slug, provider.name, str(ws), endpoints))
                    with contextlib.suppress(ProviderError):
                        provider.stop(slug, endpoints)
                    state.remove(slug)
                if created_ws:
                    shutil.rmtree(ws, ignore_errors=True)
            raise
    with ProgressStore() as store:
        store.lab_started(slug, str(ws), provider.name)
    return lab_state, existing is None


def require_state(topic: Topic) -> LabState:
    """The lab's state, or a LabError telling the learner to start it."""
    lab_state = state.load(topic.slug)
    if lab_state is None:
        raise LabError(
            f"The {topic.slug} lab is not running.",
            f"Start it with `sdtutor lab start {topic.slug}`.",
        )
    return lab_state


def status(lab_state: LabState) -> str:
    """'running' when every service answers, else 'stopped'."""
    for service, url in lab_state.urls.items():
        if service == "postgres":
            try:
                with postgres.connect(url):
                    pass
            except ProviderError:
                return "stopped"
    return "running"


def info(topic: Topic) -> dict[str, Any]:
    """The documented `lab info --json` shape."""
    lab_state = state.load(topic.slug)
    if lab_state is None:
        with ProgressStore() as store:
            remembered = store.workspace(topic.slug)
        return {
            "topic": topic.slug,
            "status": "not started",
            "provider": None,
            "workspace": remembered,
            "services": {},
        }
    return {
        "topic": topic.slug,
        "status": status(lab_state),
        "provider": lab_state.provider,
        "workspace": lab_state.workspace,
        "services": {name: {"url": url} for name, url in lab_state.urls.items()},
        "started_at": lab_state.started_at,
    }


def check(topic: Topic, lab: LabSpec) -> list[CheckResult]:
    """Run the lab's checks on the learner's workspace and services, and record them."""
    from sdtutor.lab.checks import run_checks

    lab_state = require_state(topic)
    workspace = Path(lab_state.workspace)
    if not workspace.is_dir():
        raise LabError(
            f"The workspace {workspace} is gone.",
            f"Run `sdtutor lab reset {topic.slug}` to recreate it.",
        )
    results = run_checks(lab, workspace, lab_state.urls)
    with ProgressStore() as store:
        store.record_check(
            topic.slug,
            [r.id for r in results if r.passed],
            [r.id for r in results if not r.passed],
        )
    return results


@dataclass(frozen=True)
class Hint:
    """One hint, and where it stands among the lab's hints."""

    number: int
    total: int
    text: str


def next_hint(topic: Topic, lab: LabSpec) -> Hint:
    """One more hint each call (the last one repeats)."""
    if not lab.hints:
        raise LabError("This lab has no hints.")
    with ProgressStore() as store:
        shown = store.next_hint(topic.slug, len(lab.hints))
    return Hint(shown, len(lab.hints), lab.hints[shown - 1])


def solution_files(topic: Topic, lab: LabSpec) -> list[tuple[str, str]]:
    """The reference solution's files, once the lab has passed."""
    with ProgressStore() as store:
        passed = store.lab_passed(topic.slug)
    if not passed:
        raise LabError(
            "The reference solution opens once your lab has passed.",
            f"Keep going: `sdtutor lab check {topic.slug}` shows what is left, and "
            f"`sdtutor lab hint {topic.slug}` gives a nudge.",
        )
    return [
        (str(p.relative_to(lab.solution)), p.read_text(encoding="utf-8"))
        for p in sorted(lab.solution.rglob("*"))
        if p.is_file()
    ]


def reset(
    topic: Topic, lab: LabSpec, progress: Progress = no_progress
) -> tuple[LabState, Path | None]:
    """Back to the starting state: fresh database, starter files (old ones kept aside)."""
    slug = topic.slug
    with state.exclusive(slug, "reset"):
        lab_state = require_state(topic)
        provider = provider_class(lab_state.provider)()
        endpoints = provider.start(slug, list(lab.services), progress)
        lab_state.endpoints = endpoints
        lab_state.urls = _setup_services(lab, slug, endpoints, progress, fresh=True)
        workspace = Path(lab_state.workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        backup = backup_workspace(lab, workspace)
        _copy_files(lab, workspace, overwrite=True)
        state.save(lab_state)
    with ProgressStore() as store:
        store.reset_hints(slug)
    return lab_state, backup


def stop(topic: Topic) -> bool:
    """Remove what the lab created (its database, its servers); False if not running.

    The workspace stays: it is the learner's work.
    """
    slug = topic.slug
    with state.exclusive(slug, "stop"):
        lab_state = state.load(slug)
        if lab_state is None:
            return False
        _teardown_services(lab_state)
        provider = provider_class(lab_state.provider)()
        provider.stop(slug, lab_state.endpoints)
        state.remove(slug)
        return True


def stop_all(topics: Callable[[str], Topic]) -> list[str]:
    """Stop every started lab, then anything the providers still run for sdtutor."""
    stopped = [slug for slug in state.all_started() if stop(topics(slug))]
    from sdtutor.providers import NAMES

    for name in NAMES:
        cls = provider_class(name)
        if name == "docker" and not cls.availability().ok:
            continue
        stopped += cls().stop_all()
    return stopped


__all__ = [
    "Hint",
    "backup_workspace",
    "check",
    "info",
    "next_hint",
    "require_state",
    "reset",
    "solution_files",
    "start",
    "status",
    "stop",
    "stop_all",
]
