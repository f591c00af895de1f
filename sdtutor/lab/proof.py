"""Proves a lab: its untouched starter fails, its solution passes, every wrong/ case fails.

Each case runs on a fresh copy of the lab's seeded namespace on every service (PostgreSQL
copies its template, so the seed runs once a namespace), in a temporary workspace:
starter, then the solution's files, then the case's files on top, so that each wrong case
differs from the solution by one mistake.

Cases run `jobs` at a time (SDTUTOR_PROOF_JOBS, default 3): most of a case is waiting on
a server or on a timer, not CPU. The servers are started once for the proof
(`<lab>-proof`); each worker is a process of its own with a namespace of its own on them
(`<lab>-proof-<i>`), so cases cannot see each other's data, and one lab's checks.py, the
module-global check registry and the runner's signals are never shared between cases
running at once. Outcomes come back in case order. A case that goes wrong (or raises)
beside others is proved again alone, as a learner's check runs (cases that each open fifty
connections can together exhaust a server's). A worker that dies or hangs fails its case with the
reason and is replaced. Everything every worker made is removed at the end, also after
Ctrl-C or an error. With one job, cases run here, one after another, as they always did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdtutor.content.models import LabSpec, WrongCase
from sdtutor.errors import UsageError
from sdtutor.lab.checks import run_checks
from sdtutor.lab.checks.run import default_deadline
from sdtutor.lab.results import CheckResult
from sdtutor.lab.runtime import replica_access
from sdtutor.providers.base import Endpoint, Provider
from sdtutor.services.base import ServiceKind, Target, kind
from sdtutor.services.names import Names

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

JOBS_ENV = "SDTUTOR_PROOF_JOBS"
DEFAULT_JOBS = 3
CASE_MARGIN = 120.0
"""Seconds a case may take beyond its checks' deadline (copying or seeding its namespace,
applying files) before its worker is taken for hung and killed."""
STOP_WAIT = 5.0
"""Seconds a worker gets to stop its checks and learner code when the proof ends early."""


@dataclass
class CaseOutcome:
    """How one case of a lab's proof went."""

    case: str
    expectation: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    alone: bool = False
    """Proved again alone after it went wrong or raised beside other cases."""


@dataclass(frozen=True)
class _Case:
    """One case to prove: its name, what it must do, the folders laid over the starter."""

    name: str
    expectation: str
    overlays: tuple[Path, ...]
    wrong: WrongCase | None = None


Targets = list[tuple[ServiceKind, Target]]


def proof_jobs(jobs: int | None = None) -> int:
    """How many cases of a lab run at once: `jobs`, else SDTUTOR_PROOF_JOBS, else 3."""
    if jobs is None:
        text = os.environ.get(JOBS_ENV, "").strip()
        if not text:
            return DEFAULT_JOBS
        try:
            jobs = int(text)
        except ValueError:
            jobs = 0
        if jobs < 1:
            raise UsageError(
                f"{JOBS_ENV} must be a whole number of at least 1, not '{text}'.",
                f"Set it to how many cases of a lab to prove at once (1 runs them one "
                f"after another), or unset it for {DEFAULT_JOBS}.",
            )
    if jobs < 1:
        raise UsageError(f"A proof needs at least one job, not {jobs}.")
    return jobs


def skip_reason(lab: LabSpec, requested: str | None = None) -> str:
    """Why the named provider (`requested`, else SDTUTOR_PROVIDER) cannot run `lab` at all,
    so that its proof is skipped with this reason rather than failed; '' when it can, or
    when no provider is named (then one that can serve is chosen).

    Only what no machine could change counts: the external provider cannot restart its
    servers with a setting such as max_prepared_transactions, nor give two servers of one
    kind. A provider that is merely missing here (no Docker engine) is not a reason.
    """
    from sdtutor.providers import provider_class, unsupported

    name = requested or os.environ.get("SDTUTOR_PROVIDER") or None
    if not name:
        return ""
    cls = provider_class(name)
    reason = unsupported(cls, lab.instances)
    return f"the {cls.name} provider {reason}" if reason else ""


def _cases(lab: LabSpec) -> list[_Case]:
    cases = [_Case("starter", "fails", ()), _Case("solution", "passes", (lab.solution,))]
    cases += [_Case(f"wrong/{w.name}", "fails", (lab.solution, w.path), w) for w in lab.wrong]
    return cases


def case_names(lab: LabSpec) -> list[str]:
    """The names of a lab's proof cases, in order: starter, solution, wrong/NAME..."""
    return [case.name for case in _cases(lab)]


def _overlay(source: Path, workspace: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file() and path.name != "case.yaml":
            target = workspace / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def _targets(lab: LabSpec, endpoints: dict[str, Endpoint], names: Names) -> Targets:
    """Where a namespace called `names` lives on each of the lab's servers (a replica's
    holds its primary's data: nothing is made or removed there, see _replica)."""
    return [
        (kind(i.kind), Target(endpoints[i.name].url, names, i.name, lab, endpoints[i.name].handle))
        for i in lab.instances
    ]


def _replica(target: Target) -> bool:
    return target.lab.instance(target.instance).replica_of is not None


def prove_lab(
    lab: LabSpec,
    provider: Provider,
    report: Callable[[CaseOutcome], None] | None = None,
    *,
    jobs: int | None = None,
    cases: Collection[str] | None = None,
) -> list[CaseOutcome]:
    """Run every case of a lab (or only those named in `cases`, see case_names) against
    real services; returns one outcome per case.

    `report` is called with each outcome in case order, as soon as it and every case
    before it are done. `jobs` cases run at once (default: see proof_jobs). The proof
    starts its servers once (as the lab `<lab>-proof` of this home), seeds each
    namespace's template once and copies it for every case; everything it made is
    removed at the end. Raises what a case raises when it runs alone (a LabError when a
    file cannot be applied, a ProviderError when a server goes away), after removing
    everything.
    """
    picked = _cases(lab)
    if cases is not None:
        unknown = set(cases) - {case.name for case in picked}
        if unknown:
            raise UsageError(f"Lab {lab.path.name} has no case {sorted(unknown)[0]!r}.")
        picked = [case for case in picked if case.name in cases]
    workers = min(proof_jobs(jobs), len(picked))
    slug = f"{lab.topic}-proof"
    # One job keeps the names a proof always had; workers each get a namespace of their own.
    names = [Names.for_lab(slug if workers == 1 else f"{slug}-{i}") for i in range(workers)]
    endpoints = provider.start(slug, lab.instances)
    spaces: list[Targets] = []
    try:
        spaces = [_targets(lab, endpoints, n) for n in names]
        if workers == 1:
            outcomes = []
            for case in picked:
                outcomes.append(_run_case(lab, spaces[0], case))
                if report:
                    report(outcomes[-1])
            return outcomes
        return _Pool(lab, spaces, default_deadline(lab) + CASE_MARGIN).run(picked, report)
    finally:
        _teardown(spaces)
        provider.stop(slug, endpoints)


def _teardown(spaces: Sequence[Targets]) -> None:
    """Remove every namespace the proof made (with its template and login), at once."""

    def remove(targets: Targets) -> None:
        for service_kind, target in targets:
            if _replica(target):
                continue
            with contextlib.suppress(Exception):
                service_kind.teardown(target, purge=True)

    if len(spaces) <= 1:
        for targets in spaces:
            remove(targets)
        return
    with ThreadPoolExecutor(len(spaces), thread_name_prefix="sdtutor-proof-teardown") as pool:
        for done in [pool.submit(remove, targets) for targets in spaces]:
            done.result()


def _run_case(lab: LabSpec, targets: Targets, case: _Case) -> CaseOutcome:
    """Prove one case on a fresh copy of the namespace `targets` name."""
    with tempfile.TemporaryDirectory(prefix="sdtutor-proof-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(lab.readme, workspace / "README.md")
        _overlay(lab.starter, workspace)
        for overlay in case.overlays:
            _overlay(overlay, workspace)
        access = {t.instance: k.provision(t, fresh=True) for k, t in targets if not _replica(t)}
        servers = {t.instance: t.admin_url for _, t in targets}
        access.update(replica_access(lab, servers, access))
        for name in lab.apply:
            path = workspace / name
            if not case.overlays or not path.is_file():
                continue
            for instance in lab.instances:
                if path.suffix in kind(instance.kind).suffixes and instance.name in access:
                    kind(instance.kind).apply_file(access[instance.name], path)
                    break
        results = run_checks(
            lab,
            workspace,
            {n: a.url for n, a in access.items()},
            prefixes={n: a.prefix for n, a in access.items()},
        )
    return _judge(case.name, case.expectation, results, case.wrong)


# ---------------------------------------------------------------- workers


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (shown as its cause)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # stop the running check and learner code as Ctrl-C would


def _worker(conn: Connection, lab: LabSpec, targets: list[tuple[str, Target]]) -> None:
    """A worker process: prove the cases it is sent, one at a time, in its namespace.

    It sends ("done", outcome) or ("raised", exception, traceback text) for each case.
    """
    # A session of its own: a Ctrl-C at the terminal reaches only the proof, which
    # stops its workers with SIGTERM (handled like Ctrl-C) and then tears down.
    with contextlib.suppress(OSError):
        os.setsid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    pairs = [(kind(name), target) for name, target in targets]
    try:
        while True:
            try:
                case = conn.recv()
            except EOFError:
                return  # the proof is gone
            if case is None:
                return
            try:
                message: tuple[Any, ...] = ("done", _run_case(lab, pairs, case))
            except KeyboardInterrupt:
                return
            except BaseException as exc:
                message = ("raised", exc, traceback.format_exc())
            try:
                conn.send(message)
            except Exception:  # an exception that does not pickle: send what it said
                from sdtutor.errors import LabError

                text = f"{type(message[1]).__name__}: {message[1]}"
                conn.send(("raised", LabError(text), message[2]))
    except (KeyboardInterrupt, BrokenPipeError):
        return


@dataclass
class _Ended:
    """How a case in a worker ended: its outcome, what it raised, whether it hung."""

    outcome: CaseOutcome
    error: BaseException | None = None
    hung: bool = False


@dataclass
class _Slot:
    """One worker process, the namespace it owns, and the case it is running."""

    index: int
    targets: list[tuple[str, Target]]
    process: BaseProcess | None = None
    conn: Connection | None = None
    case: int | None = None
    ends: float = 0.0


class _Pool:
    """Worker processes that prove cases, each in its own namespace."""

    def __init__(self, lab: LabSpec, spaces: Sequence[Targets], limit: float) -> None:
        import multiprocessing

        # spawn, not fork: this process may hold threads, locks and open connections.
        self.mp = multiprocessing.get_context("spawn")
        self.lab = lab
        self.limit = limit
        self.slots = [
            _Slot(i, [(k.name, t) for k, t in targets]) for i, targets in enumerate(spaces)
        ]

    def run(
        self, cases: Sequence[_Case], report: Callable[[CaseOutcome], None] | None
    ) -> list[CaseOutcome]:
        """Prove every case; outcomes in case order, reported in that order.

        A case that goes wrong or raises while others run is proved again alone (once
        the running cases end), and that verdict counts: a learner's check runs alone,
        and cases that each open many connections may together exhaust a shared server.
        What a case raises alone is raised here. A case that hung is not run again.
        """
        from multiprocessing.connection import wait

        pending = deque(range(len(cases)))
        again: deque[int] = deque()
        alone: set[int] = set()
        done: dict[int, CaseOutcome] = {}
        reported = 0
        try:
            while reported < len(cases):
                busy = [s for s in self.slots if s.case is not None]
                if again and not busy:
                    alone.add(again[0])
                    self._give(self.slots[0], again.popleft(), cases)
                elif not again and not (busy and busy[0].case in alone):
                    for slot in self.slots:
                        if slot.case is None and pending:
                            self._give(slot, pending.popleft(), cases)
                busy = [s for s in self.slots if s.case is not None]
                waitables: list[Any] = [s.conn for s in busy]
                waitables += [s.process.sentinel for s in busy if s.process is not None]
                soonest = min(s.ends for s in busy)
                wait(waitables, timeout=max(0.0, soonest - time.monotonic()) + 0.05)
                for slot in busy:
                    index, ended = slot.case, self._collect(slot, cases)
                    if ended is None or index is None:
                        continue
                    slot.case = None
                    if ended.error is not None and (
                        index in alone or not isinstance(ended.error, Exception)
                    ):
                        raise ended.error
                    if ended.outcome.ok or ended.hung or index in alone:
                        done[index] = ended.outcome
                        ended.outcome.alone = index in alone
                    else:
                        again.append(index)
                while reported in done:
                    if report:
                        report(done[reported])
                    reported += 1
        finally:
            self.close()
        return [done[i] for i in range(len(cases))]

    def _give(self, slot: _Slot, index: int, cases: Sequence[_Case]) -> None:
        if slot.process is None or not slot.process.is_alive():
            self._start(slot)
        assert slot.conn is not None and slot.process is not None
        slot.case = index
        slot.ends = time.monotonic() + self.limit
        try:
            slot.conn.send(cases[index])
        except OSError:  # it died as it started: _collect reports how
            slot.process.join(STOP_WAIT)

    def _start(self, slot: _Slot) -> None:
        mine, theirs = self.mp.Pipe()
        process = self.mp.Process(
            target=_worker,
            args=(theirs, self.lab, slot.targets),
            name=f"sdtutor-proof-{slot.index}",
            daemon=True,
        )
        process.start()
        theirs.close()
        slot.process, slot.conn = process, mine

    def _collect(self, slot: _Slot, cases: Sequence[_Case]) -> _Ended | None:
        """How the slot's case ended, if it did: done, raised, died or hung."""
        assert slot.conn is not None and slot.process is not None and slot.case is not None
        case = cases[slot.case]
        message = None
        try:
            if slot.conn.poll():
                message = slot.conn.recv()
        except (EOFError, OSError):  # it closed its end: it is ending, or must
            slot.process.join(STOP_WAIT)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
        except Exception as exc:  # an answer that does not unpickle here
            from sdtutor.errors import LabError

            raise LabError(
                f"The proof's worker sent an answer about {case.name} that cannot be read: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if message is not None and message[0] == "raised":
            from sdtutor.errors import SdtutorError

            raised: BaseException = message[1]
            if not isinstance(raised, SdtutorError):
                raised.__cause__ = _RemoteTraceback(message[2])
            return _Ended(_broken(case, f"it raised {raised}"), raised)
        if message is not None:
            return _Ended(message[1])
        if not slot.process.is_alive():
            slot.process.join()
            reason = _how_it_ended(slot.process.exitcode)
            self._forget(slot)
            return _Ended(_broken(case, f"the worker process that ran it ended ({reason})"))
        if time.monotonic() >= slot.ends:
            self._kill(slot)
            why = (
                f"it did not finish within {self.limit:g} s (the checks' deadline and "
                f"{CASE_MARGIN:g} s to prepare), so its worker process was killed"
            )
            return _Ended(_broken(case, why), hung=True)
        return None

    def _forget(self, slot: _Slot) -> None:
        if slot.conn is not None:
            slot.conn.close()
        slot.process = slot.conn = None

    def _kill(self, slot: _Slot) -> None:
        if slot.process is not None and slot.process.is_alive():
            slot.process.kill()
            slot.process.join()
        self._forget(slot)

    def close(self) -> None:
        """Stop every worker: idle ones are told to leave, busy ones get SIGTERM."""
        live = [s for s in self.slots if s.process is not None]
        for slot in live:
            assert slot.process is not None and slot.conn is not None
            with contextlib.suppress(OSError):
                if slot.case is None:
                    slot.conn.send(None)
                else:
                    slot.process.terminate()
        ends = time.monotonic() + STOP_WAIT
        for slot in live:
            assert slot.process is not None
            slot.process.join(max(0.0, ends - time.monotonic()))
            self._kill(slot)


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _broken(case: _Case, why: str) -> CaseOutcome:
    return CaseOutcome(case.name, case.expectation, False, [f"this case could not run: {why}"])


def _judge(
    case: str, expectation: str, results: list[CheckResult], wrong: WrongCase | None
) -> CaseOutcome:
    """Whether a case did what it must: pass, fail, or fail exactly its named checks."""
    outcome = CaseOutcome(case, expectation, True, results=results)
    failed = {r.id for r in results if not r.passed}
    if expectation == "passes" and failed:
        outcome.problems += [f"check {r.id} fails: {r.message}" for r in results if not r.passed]
    elif expectation == "fails" and not failed:
        outcome.problems.append("every check passes, but this case must fail")
    if wrong is not None:
        if failed != set(wrong.fails):
            outcome.problems.append(
                f"expected exactly {sorted(wrong.fails)} to fail, but "
                f"{sorted(failed) or 'none'} failed"
            )
        messages = " ".join(r.message for r in results if not r.passed).lower()
        for phrase in wrong.says:
            if phrase.lower() not in messages:
                outcome.problems.append(f"the failure message never says '{phrase}'")
    outcome.ok = not outcome.problems
    return outcome


__all__ = [
    "CASE_MARGIN",
    "DEFAULT_JOBS",
    "JOBS_ENV",
    "CaseOutcome",
    "proof_jobs",
    "prove_lab",
    "skip_reason",
]
