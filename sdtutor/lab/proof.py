"""Proves a lab: its untouched starter fails, its solution passes, every wrong/ case fails.

Each case runs on a fresh copy of the lab's seeded namespace on every service (PostgreSQL
copies its template, so the seed runs once), in a temporary workspace: starter, then the
solution's files, then the case's files on top, so that each wrong case differs from the
solution by one mistake.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sdtutor.content.models import LabSpec, WrongCase
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.providers.base import Provider
from sdtutor.services.base import Target, kind
from sdtutor.services.names import Names


@dataclass
class CaseOutcome:
    """How one case of a lab's proof went."""

    case: str
    expectation: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)


def _overlay(source: Path, workspace: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file() and path.name != "case.yaml":
            target = workspace / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def prove_lab(
    lab: LabSpec, provider: Provider, report: Callable[[CaseOutcome], None] | None = None
) -> list[CaseOutcome]:
    """Run every case of a lab against real services; returns one outcome per case.

    The proof has its own names (`<lab>-proof` under this home), seeds its template once
    and copies it for every case; everything it made is removed at the end.
    """
    slug = f"{lab.topic}-proof"
    endpoints = provider.start(slug, lab.instances)
    outcomes: list[CaseOutcome] = []
    names = Names.for_lab(slug)
    targets = [
        (kind(i.kind), Target(endpoints[i.name].url, names, i.name, lab, endpoints[i.name].handle))
        for i in lab.instances
        if not i.replica_of
    ]
    try:
        cases: list[tuple[str, str, list[Path]]] = [
            ("starter", "fails", []),
            ("solution", "passes", [lab.solution]),
        ]
        cases += [(f"wrong/{w.name}", "fails", [lab.solution, w.path]) for w in lab.wrong]
        wrong_by_name = {f"wrong/{w.name}": w for w in lab.wrong}
        for case, expectation, overlays in cases:
            with tempfile.TemporaryDirectory(prefix="sdtutor-proof-") as tmp:
                workspace = Path(tmp)
                shutil.copyfile(lab.readme, workspace / "README.md")
                _overlay(lab.starter, workspace)
                for overlay in overlays:
                    _overlay(overlay, workspace)
                access = {t.instance: k.provision(t, fresh=True) for k, t in targets}
                for name in lab.apply:
                    path = workspace / name
                    if not overlays or not path.is_file():
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
            outcomes.append(_judge(case, expectation, results, wrong_by_name.get(case)))
            if report:
                report(outcomes[-1])
    finally:
        for service_kind, target in targets:
            with contextlib.suppress(Exception):
                service_kind.teardown(target, purge=True)
        provider.stop(slug, endpoints)
    return outcomes


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


__all__ = ["CaseOutcome", "prove_lab"]
