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
from urllib.parse import unquote, urlsplit, urlunsplit

from sdtutor import locations
from sdtutor.content.models import LabSpec
from sdtutor.errors import LabError, ProviderError, SdtutorError
from sdtutor.lab import state
from sdtutor.lab.results import CheckResult
from sdtutor.lab.state import LabState
from sdtutor.progress.store import ProgressStore, now
from sdtutor.providers import check_supports, provider_class, select
from sdtutor.providers.base import Endpoint, Progress, no_progress
from sdtutor.services.base import Access, ServiceKind, Target, kind
from sdtutor.services.names import Names
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


def _require_files(lab: LabSpec) -> None:
    """Refuse a lab whose folder lacks a starting file, before anything starts."""
    missing = [source for source, _ in _workspace_files(lab) if not source.is_file()]
    if missing:
        raise LabError(
            f"The lab's folder is incomplete: {missing[0]} is missing"
            + (f" (and {len(missing) - 1} more file(s))." if len(missing) > 1 else "."),
            "Its course may be damaged: reinstall sdtutor, or if you wrote the lab, run "
            "`sdtutor content check` on its course folder.",
        )


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


def _previous_password(access: Access | None, names: Names) -> str:
    """The lab login's password from an earlier start, so the learner's URL stays valid."""
    if access is None:
        return ""
    parts = urlsplit(access.url)
    return unquote(parts.password or "") if unquote(parts.username or "") == names.role else ""


def _targets(
    lab: LabSpec, slug: str, endpoints: dict[str, Endpoint], previous: dict[str, Access]
) -> list[tuple[ServiceKind, Target]]:
    """Each instance that holds data (not replicas), with its kind and where it lives."""
    names = Names.for_lab(slug)
    out = []
    for instance in lab.instances:
        endpoint = endpoints.get(instance.name)
        if instance.replica_of or endpoint is None:
            continue
        handle = dict(endpoint.handle)
        handle["password"] = _previous_password(previous.get(instance.name), names)
        out.append((kind(instance.kind), Target(endpoint.url, names, instance.name, lab, handle)))
    return out


def _provision(
    lab: LabSpec,
    slug: str,
    endpoints: dict[str, Endpoint],
    progress: Progress,
    fresh: bool,
    previous: dict[str, Access] | None = None,
) -> dict[str, Access]:
    """Make (or find) the lab's namespace on each server; returns the lab's own access."""
    access: dict[str, Access] = {}
    for service_kind, target in _targets(lab, slug, endpoints, previous or {}):
        access[target.instance] = service_kind.provision(target, fresh, progress)
    servers = {name: endpoint.url for name, endpoint in endpoints.items()}
    return {**access, **replica_access(lab, servers, access, progress)}


def replica_access(
    lab: LabSpec,
    servers: dict[str, str],
    access: dict[str, Access],
    progress: Progress = no_progress,
) -> dict[str, Access]:
    """The lab's access to each of its replicas, given each instance's server (admin) URL
    and the lab's access to the primaries; the proofs use it too."""
    out: dict[str, Access] = {}
    for instance in lab.instances:
        if instance.replica_of and instance.name in servers:
            # A replica holds the primary's data: the same login, on the replica's server,
            # once it has replayed the primary's set-up (an apply delay holds that back too).
            progress(f"Waiting for {instance.name} to replay the set-up", None)
            delay = float(instance.settings.get("recovery_min_apply_delay_ms", "0")) / 1000
            kind(instance.kind).await_replica(
                servers[instance.replica_of], servers[instance.name], delay + 30
            )
            primary = access[instance.replica_of]
            server = urlsplit(servers[instance.name]).netloc.rsplit("@", 1)[-1]
            parts = urlsplit(primary.url)
            login = parts.netloc.rsplit("@", 1)[0]
            url = urlunsplit(parts._replace(netloc=f"{login}@{server}"))
            out[instance.name] = Access(url, primary.prefix, dict(primary.env), primary.note)
    return out


def _teardown(lab_state: LabState, lab: LabSpec, purge: bool = False) -> list[str]:
    """Remove the lab's namespaces; returns what could not be removed (a server that is
    gone has nothing left to remove)."""
    problems = []
    for service_kind, target in _targets(lab, lab_state.topic, lab_state.endpoints, {}):
        if not service_kind.probe(target.admin_url):
            continue
        try:
            service_kind.teardown(target, purge)
        except ProviderError as exc:
            problems.append(exc.message)
    return problems


@dataclass(frozen=True)
class Applied:
    """What applying one of the learner's apply-files did."""

    name: str
    statements: int | None  # how many ran, when all of them did
    problem: str = ""  # why not every statement was applied
    refused: bool = False  # the server refused one (`problem` is `file:line: error`)
    notes: tuple[str, ...] = ()  # what else to know (psql commands skipped without psql)

    @property
    def ok(self) -> bool:
        """Whether every statement of the file was applied."""
        return not self.problem

    def note(self, again: bool = False) -> str:
        """A sentence or two for the learner."""
        return " ".join((self._outcome(again), *self.notes))

    def _outcome(self, again: bool) -> str:
        if self.problem and self.refused:
            return (
                f"Your {self.name} did not all apply: the server refused {self.problem} "
                "The statements before that one are applied; the ones after it are not."
            )
        if self.problem:
            return f"Your {self.name} was not applied: {self.problem}"
        if not self.statements:
            return f"Your {self.name} has no statements to apply (only comments)."
        plural = "s" if self.statements != 1 else ""
        return (
            f"Applied your {self.name}{' again' if again else ''} "
            f"({self.statements} statement{plural})."
        )


def _apply_instance(lab: LabSpec, lab_state: LabState, name: str) -> str | None:
    """The instance a workspace file is applied to (the first whose kind takes its suffix)."""
    suffix = Path(name).suffix
    for instance in lab.instances:
        if suffix in kind(instance.kind).suffixes and instance.name in lab_state.access:
            return instance.name
    return None


def _apply_one(lab: LabSpec, lab_state: LabState, name: str) -> Applied:
    """Apply one workspace file quietly; a refusal is reported, never raised."""
    instance = _apply_instance(lab, lab_state, name)
    path = Path(lab_state.workspace) / name
    if instance is None:
        return Applied(name, None, "no service of this lab takes such a file.")
    if not path.is_file():
        return Applied(name, None, f"{path} is missing.")
    service_kind = kind(lab_state.endpoints[instance].service)
    notes: list[str] = []
    try:
        count = service_kind.apply_file(lab_state.access[instance], path, notes=notes)
        return Applied(name, count, notes=tuple(notes))
    except SdtutorError as exc:
        first = exc.message.strip().splitlines()[0] if exc.message.strip() else ""
        # A refusal names the file and line (`indexes.sql:7: ...`); anything else is the
        # server or the connection.
        refused = first.startswith(f"{path.name}:")
        return Applied(name, None, first.rstrip(".") + ".", refused, tuple(notes))


def is_apply_file(lab: LabSpec, lab_state: LabState, path: Path) -> str | None:
    """The lab.yaml `apply:` name that `path` is (in the lab's workspace), if any."""
    resolved = path.expanduser().resolve()
    for name in lab.apply:
        if (Path(lab_state.workspace) / name).resolve() == resolved:
            return name
    return None


def apply_files(
    topic: Topic,
    lab: LabSpec,
    progress: Progress = no_progress,
    skip: str | None = None,
    action: str = "shell",
) -> list[Applied]:
    """Make the lab's data hold what the learner's apply-files say.

    Re-running an edited file on the data it already changed fails ("relation ...
    already exists") or keeps what the file no longer says; so the seeded data is copied
    anew (about 0.1 s for a template copy) into each instance the files apply to, and
    every apply-file runs on it in lab.yaml order. `skip` names a file the caller runs
    itself, visibly (`lab shell -f`), after this. Raises LabError when the lab is not
    running or busy in another terminal.
    """
    slug = topic.slug
    with state.exclusive(slug, action):
        lab_state = require_state(topic)
        instances = {_apply_instance(lab, lab_state, name) for name in lab.apply}
        for service_kind, target in _targets(lab, slug, lab_state.endpoints, lab_state.access):
            if target.instance in instances:
                lab_state.access[target.instance] = service_kind.provision(target, True, progress)
        state.save(lab_state)
        return [_apply_one(lab, lab_state, name) for name in lab.apply if name != skip]


def edited_apply_files(lab: LabSpec, workspace: Path) -> list[str]:
    """The apply-files the learner has changed from the starter's."""
    edited = []
    for name in lab.apply:
        path, starter = workspace / name, lab.starter / name
        if path.is_file() and not (starter.is_file() and path.read_bytes() == starter.read_bytes()):
            edited.append(name)
    return edited


def _reapply(lab: LabSpec, lab_state: LabState) -> list[str]:
    """Apply the learner's edited apply-files to a namespace copied anew; returns notes."""
    return [
        _apply_one(lab, lab_state, name).note(again=True)
        for name in edited_apply_files(lab, Path(lab_state.workspace))
    ]


def start(
    topic: Topic,
    lab: LabSpec,
    provider_name: str | None = None,
    workspace: Path | None = None,
    progress: Progress = no_progress,
) -> tuple[LabState, bool, list[str]]:
    """Start a lab (or bring a stopped one back); returns its state, whether it is new
    (its workspace made just now), and notes for the learner (their workspace kept and
    their edited files applied again, say).

    Raises ProviderError / LabError with what to do; on any failure or Ctrl-C, what this
    call created is removed again.
    """
    slug = topic.slug
    _require_files(lab)
    with state.exclusive(slug, "start"):
        existing = state.load(slug)
        if existing and provider_name and existing.provider != provider_name:
            raise LabError(
                f"The {slug} lab is already set up with the {existing.provider} provider.",
                f"Run `sdtutor lab stop {slug}` first to switch to {provider_name}.",
            )
        if existing:
            provider = provider_class(existing.provider)()
            check_supports(type(provider), lab.instances)
        else:
            provider = select(provider_name, lab.instances)
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
        returning = (ws / "README.md").is_file()  # this workspace has held the lab before
        endpoints: dict[str, Endpoint] = {}
        notes: list[str] = []
        try:
            if lab.instances:
                progress(f"Starting services with the {provider.name} provider", None)
            endpoints = provider.start(slug, lab.instances, progress)
            previous = existing.access if existing else {}
            access = _provision(lab, slug, endpoints, progress, existing is None, previous)
            ws.mkdir(parents=True, exist_ok=True)
            _copy_files(lab, ws, overwrite=False)
            lab_state = LabState(slug, provider.name, str(ws), endpoints, access, now())
            if existing is None and returning:
                notes = [f"Your workspace is as you left it: {ws}", *_reapply(lab, lab_state)]
            state.save(lab_state)
        except BaseException:
            with _no_interrupts():
                if existing is None:
                    # A first start leaves nothing (its role included); a start after
                    # `lab stop` keeps the seeded copy that stop kept.
                    first = all(k.topic != slug for k in state.kept())
                    _teardown(LabState(slug, provider.name, str(ws), endpoints), lab, first)
                    with contextlib.suppress(ProviderError):
                        provider.stop(slug, endpoints)
                    state.remove(slug)
                if created_ws:
                    shutil.rmtree(ws, ignore_errors=True)
            raise
    with ProgressStore() as store:
        store.lab_started(slug, str(ws), provider.name)
    return lab_state, existing is None and not returning, notes


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
    for name, access in lab_state.access.items():
        endpoint = lab_state.endpoints.get(name)
        if endpoint is None or not kind(endpoint.service).probe(access.url):
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
        "services": {
            name: {
                "url": access.url,
                "kind": lab_state.endpoints[name].service,
                **({"prefix": access.prefix} if access.prefix else {}),
                **({"env": dict(access.env)} if access.env else {}),
            }
            for name, access in lab_state.access.items()
            if name in lab_state.endpoints
        },
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
    prefixes = {name: a.prefix for name, a in lab_state.access.items()}
    results = run_checks(lab, workspace, lab_state.urls, prefixes=prefixes)
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


def hints_given(topic: Topic, lab: LabSpec) -> list[Hint]:
    """The hints shown so far, in order (none before the first `lab hint`)."""
    with ProgressStore() as store:
        shown = min(store.topic(topic.slug).hints_shown, len(lab.hints))
    return [Hint(n, len(lab.hints), lab.hints[n - 1]) for n in range(1, shown + 1)]


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
    topic: Topic, lab: LabSpec, progress: Progress = no_progress, data_only: bool = False
) -> tuple[LabState, Path | None]:
    """Back to the starting state: the seeded data copied anew and, unless `data_only`,
    the starter files (the learner's changed ones kept aside)."""
    slug = topic.slug
    if not data_only:
        _require_files(lab)
    with state.exclusive(slug, "reset"):
        lab_state = require_state(topic)
        provider = provider_class(lab_state.provider)()
        endpoints = provider.start(slug, lab.instances, progress)
        lab_state.access = _provision(
            lab, slug, endpoints, progress, True, previous=lab_state.access
        )
        lab_state.endpoints = endpoints
        workspace = Path(lab_state.workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        backup = None
        if not data_only:
            backup = backup_workspace(lab, workspace)
            _copy_files(lab, workspace, overwrite=True)
        state.save(lab_state)
    with ProgressStore() as store:
        store.reset_hints(slug)
    return lab_state, backup


def stop(topic: Topic, lab: LabSpec, purge: bool = False) -> bool:
    """Remove what the lab created (its database, its servers); False if not running.

    The seeded template stays (the next start copies it) unless `purge`. The workspace
    stays: it is the learner's work. Raises LabError naming what could not be removed.
    """
    slug = topic.slug
    with state.exclusive(slug, "stop"):
        lab_state = state.load(slug)
        if lab_state is None:
            return False
        problems = _teardown(lab_state, lab, purge)
        provider = provider_class(lab_state.provider)()
        provider.stop(slug, lab_state.endpoints)
        if purge:
            state.forget_kept(slug)
        else:
            state.keep(lab_state)  # the seeded copy stays: `stop --all` must find it
        state.remove(slug)
    if problems:
        raise LabError(
            f"The {slug} lab is stopped, but some of it was left in place: " + "; ".join(problems),
            "Nothing that another home made was touched.",
        )
    return True


def stop_all(topics: Callable[[str], Topic], labs: Callable[[Topic], LabSpec]) -> list[str]:
    """Stop every started lab (templates too), then what the providers still run here."""
    stopped = []
    for slug in state.all_started():
        topic = topics(slug)
        if stop(topic, labs(topic), purge=True):
            stopped.append(slug)
    for kept in state.kept():
        # Stopped before, its seeded copy kept for a quick start: remove that too.
        with state.exclusive(kept.topic, "stop"):
            if state.load(kept.topic) is None:
                problems = _teardown(kept, labs(topics(kept.topic)), purge=True)
                if problems:
                    raise LabError(
                        f"The {kept.topic} lab's seeded copy could not all be removed: "
                        + "; ".join(problems),
                        "Nothing that another home made was touched.",
                    )
                state.forget_kept(kept.topic)
                stopped.append(f"{kept.topic} (its seeded copy)")
    from sdtutor.providers import NAMES

    for name in NAMES:
        cls = provider_class(name)
        if name == "docker" and not cls.availability().ok:
            continue
        stopped += cls().stop_all()
    return stopped


__all__ = [
    "Applied",
    "Hint",
    "apply_files",
    "backup_workspace",
    "check",
    "edited_apply_files",
    "hints_given",
    "info",
    "is_apply_file",
    "next_hint",
    "require_state",
    "reset",
    "solution_files",
    "start",
    "status",
    "stop",
    "stop_all",
]
