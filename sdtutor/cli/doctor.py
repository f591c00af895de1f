"""`sdtutor doctor`: which providers work here, and how to fix the rest."""

from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("doctor")(doctor)


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Say which providers work on this machine, and how to fix the rest."""
    import shutil
    import sys

    from rich.table import Table

    from sdtutor import __version__, locations
    from sdtutor.cli.ui import console, dump_json
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
            }
        )
    facts = {
        "version": __version__,
        "python": sys.version.split()[0],
        "home": str(locations.home()),
        "course": str(locations.course_dir()),
        "psql": shutil.which("psql"),
    }
    if as_json:
        dump_json({"providers": report, **facts})
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
        console.print(f"sdtutor {facts['version']} on Python {facts['python']}")
        console.print(f"state:  {facts['home']}  (set SDTUTOR_HOME to move it)")
        console.print(f"course: {facts['course']}")
        console.print(
            f"psql:   {facts['psql'] or 'not installed (lab shell uses its built-in prompt)'}"
        )
    if not any(row["ok"] for row in report):
        raise typer.Exit(2)
