"""`sdtutor list`: the twenty topics and where the learner stands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("list")(list_topics)


def list_topics(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and graders."),
) -> None:
    """List all topics with lesson, quiz and lab status."""
    from rich.table import Table

    from sdtutor.cli.ui import console, dump_json
    from sdtutor.status import course_status

    rows = course_status()
    if as_json:
        dump_json([r.to_json() for r in rows])
        return
    table = Table(title="sdtutor: backend system design in 20 topics", title_justify="left")
    table.add_column("#", justify="right", style="bold")
    table.add_column("topic")
    table.add_column("lesson")
    table.add_column("quiz")
    table.add_column("lab")
    styles = {"read": "green", "passed": "green", "started": "yellow", "not written": "dim"}
    for r in rows:
        if not r.quiz_written:
            quiz = "[dim]not written[/]"
        elif r.quiz_best is None:
            quiz = "not taken"
        else:
            colour = "green" if r.quiz_best >= 0.8 else "yellow"
            quiz = f"[{colour}]best {r.quiz_best:.0%}[/]"
        lesson_style = styles.get(r.lesson, "")
        lab_style = styles.get(r.lab, "")
        table.add_row(
            str(r.topic.number),
            f"{r.topic.title}\n[dim]{r.topic.slug}[/]",
            f"[{lesson_style}]{r.lesson}[/]" if lesson_style else r.lesson,
            quiz,
            f"[{lab_style}]{r.lab}[/]" if lab_style else r.lab,
        )
    console.print(table)
    console.print("Start with [bold]sdtutor next[/], or [bold]sdtutor learn TOPIC[/].")
