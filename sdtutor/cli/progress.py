"""`sdtutor progress`: what is done; `progress export` for instructors."""

from pathlib import Path

import typer

app = typer.Typer(help="What you have read, answered and passed.", invoke_without_command=True)


@app.callback()
def progress(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and graders."),
) -> None:
    """Show what you have read, answered and passed."""
    if ctx.invoked_subcommand is not None:
        return
    from sdtutor.cli.ui import console, dump_json
    from sdtutor.status import course_status

    rows = course_status()
    if as_json:
        dump_json(_summary(rows))
        return
    from rich.table import Table

    table = Table(title="Your progress", title_justify="left")
    for col in ("#", "topic", "lesson", "quiz", "lab"):
        table.add_column(col)
    touched = [
        r
        for r in rows
        if r.lesson in ("read", "started") or r.quiz_attempts or r.lab in ("started", "passed")
    ]
    for r in touched:
        tries = "1 try" if r.quiz_attempts == 1 else f"{r.quiz_attempts} tries"
        quiz = f"best {r.quiz_best:.0%} ({tries})" if r.quiz_best is not None else "-"
        table.add_row(str(r.topic.number), r.topic.slug, r.lesson, quiz, r.lab)
    if touched:
        console.print(table)
    data = _summary(rows)["totals"]
    console.print(
        f"Lessons read: {data['lessons_read']}/{data['lessons']}   "
        f"Quizzes taken: {data['quizzes_taken']}/{data['quizzes']}   "
        f"Labs passed: {data['labs_passed']}/{data['labs']}"
    )
    if not touched:
        console.print("Nothing yet. `sdtutor next` starts the first step.")


def _summary(rows):  # type: ignore[no-untyped-def]
    return {
        "topics": [r.to_json() for r in rows],
        "totals": {
            "lessons": sum(r.lesson != "not written" for r in rows),
            "lessons_read": sum(r.lesson == "read" for r in rows),
            "quizzes": sum(r.quiz_written for r in rows),
            "quizzes_taken": sum(r.quiz_best is not None for r in rows),
            "labs": sum(r.lab != "not written" for r in rows),
            "labs_passed": sum(r.lab == "passed" for r in rows),
        },
    }


@app.command("export")
def export(
    fmt: str = typer.Option("json", "--format", "-f", help="json or csv."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file, not stdout."),
    learner: str = typer.Option(
        None,
        "--learner",
        help="Your name or id as your instructor knows you (remembered for next time; "
        "asked once in a terminal when never given).",
    ),
) -> None:
    """Export progress for an instructor (no passwords or URLs, ever)."""
    import csv
    import io
    import json

    from sdtutor.errors import UsageError
    from sdtutor.progress.store import ProgressStore, now
    from sdtutor.status import course_status

    if fmt not in ("json", "csv"):
        raise UsageError(f"Unknown format '{fmt}'.", "Use --format json or --format csv.")
    with ProgressStore() as store:
        name = _learner(store, learner)
        rows = course_status(store=store)
        answers = store.answers()
        checks = store.lab_history()
    titles = _lesson_titles(rows)
    if fmt == "json":
        summary = _summary(rows)
        for topic in summary["topics"]:
            topic["short_title"] = topic["title"]
            topic["title"] = titles.get(topic["slug"], topic["title"])
        text = json.dumps(
            {
                "exported_at": now(),
                "learner": {"name": name, "home_id": _home_id()},
                **summary,
                "answers": answers,
                "lab_checks": checks,
            },
            indent=2,
            ensure_ascii=False,
        )
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            ["number", "slug", "title", "lesson", "quiz_best", "quiz_attempts", "lab", "learner"]
        )
        for r in rows:
            writer.writerow(
                [
                    r.topic.number,
                    r.topic.slug,
                    titles.get(r.topic.slug, r.topic.title),
                    r.lesson,
                    "" if r.quiz_best is None else r.quiz_best,
                    r.quiz_attempts,
                    r.lab,
                    name,
                ]
            )
        text = buf.getvalue()
    text = text.rstrip("\n") + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {output}", err=True)
    else:
        typer.echo(text, nl=False)


def _learner(store, given: str | None) -> str:  # type: ignore[no-untyped-def]
    """The learner's name: --learner (remembered), else the remembered one, else asked
    once in a terminal; else empty, with a word on how to set it."""
    from sdtutor.cli.ui import interactive

    name = (given or "").strip() or store.setting("learner") or ""
    if not name and interactive():
        name = typer.prompt("Your name or id, as your instructor knows you").strip()
    if name and name != store.setting("learner"):
        store.set_setting("learner", name)
    if not name:
        typer.echo(
            "The export carries no name: add --learner 'Your Name' (remembered after).",
            err=True,
        )
    return name


def _home_id() -> str:
    from sdtutor.services.names import home_id

    return home_id()


def _lesson_titles(rows) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Each written lesson's own title (the course map uses short ones)."""
    from sdtutor.content.course import Course
    from sdtutor.errors import SdtutorError

    course, titles = Course(), {}
    for r in rows:
        if r.lesson == "not written":
            continue
        try:
            titles[r.topic.slug] = course.lesson(r.topic).title
        except SdtutorError:
            continue
    return titles
