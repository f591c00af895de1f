"""`sdtutor learn TOPIC` and `sdtutor next`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from sdtutor.content.models import Lesson
    from sdtutor.topics import Topic


class _LearnCommand(TyperCommand):
    """Usage reads `TOPIC [SECTION]`, not typer's `{TOPIC} [SECTION]`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # click.Context (vendored)
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("learn", cls=_LearnCommand)(learn)
    app.command("next")(next_step)


def learn(
    topic: str = typer.Argument(
        ...,
        metavar="TOPIC",
        help="Number, slug or unambiguous prefix (7, indexing, index).",
        show_default=False,
    ),
    section: str | None = typer.Argument(
        None,
        metavar="SECTION",
        help="Open this section: its number (3) or the start of its title (how it). "
        "Without it, the lesson opens where you left it.",
        show_default=False,
    ),
) -> None:
    """Read a topic's lesson a screen at a time, then take its quiz and its lab.

    Keys as in less: space/b page, j/k line, g/G top/bottom, n/p section, q quit
    (your place is saved)."""
    from sdtutor.topics import resolve

    run_learn(resolve(topic), section)


def pick_section(lesson: Lesson, wanted: str) -> int:
    """The 0-based index of the section `wanted` names: its number (1-based), its
    title, or the start of its title (any case). Raises UsageError with the list."""
    from sdtutor.errors import UsageError

    headings = [s.heading for s in lesson.sections]
    text = wanted.strip()
    if text.isdigit():
        if 1 <= int(text) <= len(headings):
            return int(text) - 1
        problem = f"{lesson.title} has {len(headings)} sections; there is no section {text}."
    else:
        low = text.lower()
        exact = [i for i, h in enumerate(headings) if h.lower() == low]
        starts = [i for i, h in enumerate(headings) if h.lower().startswith(low)]
        if exact or len(starts) == 1:
            return (exact or starts)[0]
        if starts:
            which = " or ".join(f'{i + 1} ("{headings[i]}")' for i in starts)
            problem = f'"{text}" could be section {which}.'
        else:
            problem = f'No section of {lesson.title} starts with "{text}".'
    listing = "\n".join(f"  {i}. {h}" for i, h in enumerate(headings, 1))
    raise UsageError(
        problem,
        f"The sections are:\n{listing}\n"
        f"Give a number or the start of a title: sdtutor learn {lesson.slug} 3",
    )


def run_learn(topic: Topic, section: str | None = None) -> None:
    """The lesson, then the offer of the quiz, then of the lab."""
    from sdtutor.cli import render
    from sdtutor.cli.ui import console, interactive
    from sdtutor.content.course import Course
    from sdtutor.progress.store import ProgressStore

    course = Course()
    lesson = course.lesson(topic)
    chosen = None if section is None else pick_section(lesson, section)
    if not interactive() or os.environ.get("TERM") == "dumb":
        if chosen is not None:  # one section, as asked; the lesson is not read through
            console.print(render.section(lesson, chosen))
            return
        console.print(render.lesson_header(lesson))
        for i in range(len(lesson.sections)):
            console.print(render.section(lesson, i))
        with ProgressStore() as store:
            store.record_lesson(topic.slug, len(lesson.sections), finished=True)
        return

    from sdtutor.cli.pager import Document, Pager, ask_yes_no

    count = len(lesson.sections)
    with ProgressStore() as store:
        saved = store.position(topic.slug)
        note = ""
        if chosen is not None:
            start = (chosen, 0)
        elif saved and saved[0] < count and saved != (0, 0):
            start = saved
            note = "resumed here"
        else:
            start = (0, 0)
        doc = Document(
            count=count,
            render=lambda i, width: render.to_lines(render.lesson_page(lesson, i), width),
            title=lambda i: lesson.sections[i].heading,
            on_move=lambda i, line: store.save_position(topic.slug, i, line),
        )
        outcome = Pager(doc, *start, note=note).run()
        finished = outcome.how == "finished"
        if finished:
            store.save_position(topic.slug, 0, 0)  # read through: next time from the top
        else:
            store.save_position(topic.slug, outcome.section, outcome.line)
        store.record_lesson(topic.slug, outcome.furthest + 1, finished)
    if not finished:
        at = outcome.section + 1
        console.print(
            f"Your place is saved: section {at} of {count}, "
            f"{lesson.sections[outcome.section].heading}.\n"
            f"[bold]sdtutor learn {topic.slug}[/] resumes at section {at}."
        )
        return
    console.print(f"[green]Lesson read.[/] {lesson.number}. {lesson.title}")
    content = course.content(topic)
    if content.quiz_path and ask_yes_no("Take the quiz now?", default=True):
        from sdtutor.cli.quiz import run_quiz

        run_quiz(topic)
    if content.lab_path and ask_yes_no("Start the lab now?", default=True):
        from sdtutor.cli.lab import do_start

        do_start(topic, None, None)


def next_step() -> None:
    """Start the next step: due reviews first, then the next unfinished lesson, quiz or lab."""
    from sdtutor.cli.ui import console, interactive
    from sdtutor.progress.store import ProgressStore
    from sdtutor.review import outlook
    from sdtutor.status import choose_next, course_status

    with ProgressStore() as store:
        rows = course_status(store=store)
        due = len(outlook(store).due)
    step = choose_next(rows, due)
    if step.kind == "review":
        if not interactive():
            console.print(f"Next: {step.due} question(s) due for review.")
            console.print("Run: sdtutor review")
            return
        # `review` opens with the same line ("N question(s) due for review"): say it once.
        from sdtutor.cli.quiz import review

        review(as_json=False, limit=20)
        return
    row = step.row
    if row is None:
        console.print("[green]Everything written so far is done.[/] Well played.")
        return
    console.print(f"Next: the {step.kind} of {row.topic.number}. {row.topic.title}")
    if not interactive():
        command = {"lesson": "learn", "quiz": "quiz", "lab": "lab start"}[step.kind]
        console.print(f"Run: sdtutor {command} {row.topic.slug}")
        return
    if step.kind == "lesson":
        run_learn(row.topic)
    elif step.kind == "quiz":
        from sdtutor.cli.quiz import run_quiz

        run_quiz(row.topic)
    else:
        from sdtutor.cli.lab import do_start

        do_start(row.topic, None, None)
