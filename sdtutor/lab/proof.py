"""Proves a lab: its untouched starter fails, its solution passes, every wrong/ case fails.

Each case runs on a fresh copy of the lab's seeded database (copied from a template, so
the seed runs once), in a temporary workspace: starter, then the solution's files, then
the case's files on top, so that each wrong case differs from the solution by one mistake.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sdtutor.content.models import LabSpec
from sdtutor.lab import postgres
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.providers.base import Provider


@dataclass
class CaseOutcome:
    """How one case of a lab's proof went."""

    case: str
    expectation: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)


def apply_sql(url: str, path: Path) -> None:
    """Apply a workspace SQL file the way `sdtutor lab shell -f` does."""
    for _ in postgres.run_statements(url, path):
        pass


def _overlay(source: Path, workspace: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file() and path.name != "case.yaml":
            target = workspace / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def prove_lab(
    lab: LabSpec, provider: Provider, report: Callable[[CaseOutcome], None] | None = None
) -> list[CaseOutcome]:
    """Run every case of a lab against real services; returns one outcome per case."""
    name = f"{lab.topic}-proof"
    endpoints = provider.start(name, list(lab.services))
    outcomes: list[CaseOutcome] = []
    admin_url = endpoints["postgres"].url if "postgres" in endpoints else ""
    template = postgres.database_name(name) + "_template"
    dbname = postgres.database_name(name)
    try:
        if admin_url:
            postgres.create_database(admin_url, template)
            setup = lab.setup.get("postgres")
            if setup:
                postgres.run_setup(postgres.with_database(admin_url, template), lab.path / setup)
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
                urls = {}
                if admin_url:
                    _fresh_copy(admin_url, template, dbname)
                    urls["postgres"] = postgres.with_database(admin_url, dbname)
                    for sql_file in lab.apply:
                        if overlays and (workspace / sql_file).is_file():
                            apply_sql(urls["postgres"], workspace / sql_file)
                results = run_checks(lab, workspace, urls)
            outcome = CaseOutcome(case, expectation, True, results=results)
            failed = {r.id for r in results if not r.passed}
            if expectation == "passes" and failed:
                outcome.problems += [
                    f"check {r.id} fails: {r.message}" for r in results if not r.passed
                ]
            elif expectation == "fails" and not failed:
                outcome.problems.append("every check passes, but this case must fail")
            if case in wrong_by_name:
                wrong = wrong_by_name[case]
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
            outcomes.append(outcome)
            if report:
                report(outcome)
    finally:
        if admin_url:
            for db in (dbname, template):
                with contextlib.suppress(Exception):
                    postgres.drop_database(admin_url, db)
        provider.stop(name, endpoints)
    return outcomes


def _fresh_copy(admin_url: str, template: str, dbname: str) -> None:
    from psycopg import sql

    postgres.drop_database(admin_url, dbname)
    with postgres.admin(admin_url) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(dbname), sql.Identifier(template)
            )
        )


__all__ = ["CaseOutcome", "apply_sql", "prove_lab"]
