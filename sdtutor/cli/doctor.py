"""`sdtutor doctor`: which providers work here, and how to fix the rest."""

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("doctor")(doctor)


def _labs_would_get(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which provider each lab would start with here, without starting anything."""
    import os

    from sdtutor.content.course import Course
    from sdtutor.errors import SdtutorError
    from sdtutor.providers import provider_class, unsupported

    working = {row["provider"]: row for row in report if row["ok"]}
    requested = os.environ.get("SDTUTOR_PROVIDER")
    order = [requested] if requested else ["docker", "local"]
    out: list[dict[str, Any]] = []
    course = Course()
    for content in course.contents():
        if content.lab_path is None:
            continue
        try:
            lab = course.lab(content.topic)
        except SdtutorError as exc:
            out.append({"topic": content.topic.slug, "provider": None, "reason": exc.message})
            continue
        chosen, reasons = None, []
        for name in order:
            cls = provider_class(name)
            problem = unsupported(cls, lab.instances)
            kinds = set(lab.services) - set(working.get(name, {}).get("services", []))
            if name not in working:
                reasons.append(f"{name} does not work here")
            elif problem:
                reasons.append(f"{name} {problem}")
            elif kinds:
                reasons.append(f"{name} has no {', '.join(sorted(kinds))} here")
            else:
                chosen = name
                break
        out.append(
            {
                "topic": content.topic.slug,
                "services": list(lab.services),
                "provider": chosen,
                "reason": "" if chosen else "; ".join(reasons),
            }
        )
    return out


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Say which providers work on this machine, and how to fix the rest."""
    import shutil
    import sys

    from rich.table import Table

    from sdtutor import __version__, locations
    from sdtutor.cli.ui import console, dump_json
    from sdtutor.lab.runner.isolation import current_isolation
    from sdtutor.providers import NAMES, provider_class

    report: list[dict[str, Any]] = []
    for name in NAMES:
        cls = provider_class(name)
        available = cls.availability()
        report.append(
            {
                "provider": name,
                "ok": available.ok,
                "detail": available.detail,
                "fix": available.fix,
                "services": list(available.services),
                "replicas": cls.replicas,
            }
        )
    labs = _labs_would_get(report)
    facts = {
        "version": __version__,
        "python": sys.version.split()[0],
        "home": str(locations.home()),
        "course": str(locations.course_dir()),
        "psql": shutil.which("psql"),
        "learner_code": current_isolation().note,
    }
    if as_json:
        dump_json({"providers": report, "labs": labs, **facts})
    else:
        table = Table(title="Providers", title_justify="left")
        table.add_column("provider", style="bold")
        table.add_column("works here")
        table.add_column("details / how to fix")
        for row in report:
            detail = row["detail"] + (
                f"\n[yellow]{row['fix']}[/]" if row["fix"] and not row["ok"] else ""
            )
            table.add_row(row["provider"], "[green]yes[/]" if row["ok"] else "[red]no[/]", detail)
        console.print(table)
        for lab in labs:
            got = lab["provider"] or "[red]none[/]"
            why = f" ({lab['reason']})" if lab["reason"] else ""
            console.print(f"lab {lab['topic']}: {got}{why}", soft_wrap=True)
        console.print(f"sdtutor {facts['version']} on Python {facts['python']}")
        console.print(f"state:  {facts['home']}  (set SDTUTOR_HOME to move it)")
        console.print(f"course: {facts['course']}")
        console.print(
            f"psql:   {facts['psql'] or 'not installed (lab shell uses its built-in prompt)'}"
        )
        console.print(f"checks: {facts['learner_code']}", soft_wrap=True)
    if not any(row["ok"] for row in report):
        raise typer.Exit(2)
