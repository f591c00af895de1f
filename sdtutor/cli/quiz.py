"""`sdtutor quiz TOPIC` and `sdtutor review`: questions answered with single keystrokes,
the right answer and its explanation after each, and a summary that says what to re-read.
"""

import sys
from typing import TYPE_CHECKING

import typer

from sdtutor.topics import Topic

if TYPE_CHECKING:
    from sdtutor.content.models import Question
    from sdtutor.grading import Graded, Summary

STOP_KEYS = ("q", "\x1b", "\x03", "\x04")
KINDS = {
    "single": "one answer",
    "multiple": "one or more answers",
    "order": "put in order",
    "truefalse": "true or false",
    "numeric": "a number",
}


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("quiz")(quiz)
    app.command("review")(review)


def quiz(
    topic: str = typer.Argument(..., help="Number, slug or unambiguous prefix."),
) -> None:
    """Take a topic's quiz. Without a terminal, answers are read one per line from stdin."""
    from sdtutor.topics import resolve

    summary = run_quiz(resolve(topic))
    if summary is not None and summary.correct < summary.total:
        raise typer.Exit(1)


def review(
    as_json: bool = typer.Option(False, "--json", help="List what is due as JSON; ask nothing."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="At most this many questions."),
) -> None:
    """Spaced review of due questions from every topic (missed ones come back soon)."""
    from sdtutor.cli.ui import console, dump_json
    from sdtutor.progress.store import ProgressStore
    from sdtutor.review import describe_wait, outlook

    with ProgressStore() as store:
        look = outlook(store)
    if as_json:
        dump_json(
            {
                "due": len(look.due),
                "scheduled": look.scheduled,
                "next_due": look.next_due.isoformat() if look.next_due else None,
                "questions": [d.to_json() for d in look.due[:limit]],
            }
        )
        return
    if not look.due:
        if look.scheduled == 0:
            console.print(
                "Nothing to review yet: questions join the review once you have "
                "answered them in a quiz (`sdtutor quiz TOPIC`)."
            )
        else:
            wait = describe_wait(look.next_due) if look.next_due else "later"
            console.print(
                f"Nothing is due. {look.scheduled} questions are scheduled; the "
                f"next comes back {wait}."
            )
        return
    batch = look.due[:limit]
    console.print(
        f"[bold]{len(look.due)} question(s) due for review[/]"
        + (f"; here are the first {len(batch)}." if len(batch) < len(look.due) else ".")
    )
    results = ask([(d.topic, d.question) for d in batch], attempt_id=None, title="Review")
    if results is None:
        return
    show_summary(results, title="Review finished")
    if not all(g.correct for _, g in results):
        raise typer.Exit(1)


def _prompt_for(question_type: str, count: int) -> str:
    from sdtutor.content.models import LETTERS

    letters = LETTERS[:count]
    if question_type == "single":
        return f"Press {'/'.join(letters)}"
    if question_type == "multiple":
        return "Press each right letter, then Enter"
    if question_type == "order":
        return "Press the letters first to last, then Enter (Backspace to undo)"
    if question_type == "truefalse":
        return "Press t or f"
    return "Type a number, then Enter"


def _keys(question: "Question") -> str | None:
    """Read one answer at a terminal with single keystrokes; None when the learner quits."""
    from sdtutor.cli.ui import colour_enabled, console
    from sdtutor.content.models import LETTERS

    prompt = _prompt_for(question.type, len(question.choices))
    if question.type in ("single", "truefalse"):
        console.print(f"[bold]{prompt}[/] ", end="")
        key = typer.getchar()
        if key in STOP_KEYS:
            console.print()
            return None
        console.print(key)
        return key
    console.print(f"[bold]{prompt}[/]")
    valid = LETTERS[: len(question.choices)]
    typed = ""

    def redraw() -> None:
        # The whole answer so far, on one line rewritten in place. Raw writes: rich
        # keeps its own idea of the cursor column and would wrap the line.
        if question.type == "numeric":
            label, shown = "Answer", typed
        elif question.type == "multiple":
            label, shown = "Selected", " ".join(sorted(typed))
        else:
            label, shown = "Order", " → ".join(typed)
        bold, plain = ("\x1b[1m", "\x1b[0m") if colour_enabled() else ("", "")
        sys.stdout.write(f"\r\x1b[2K{bold}{label}:{plain} {shown}")
        sys.stdout.flush()

    while True:
        key = typer.getchar()
        if key in STOP_KEYS:
            sys.stdout.write("\n")
            return None
        if key in ("\r", "\n"):
            sys.stdout.write("\n")
            return typed
        if key in ("\x7f", "\b"):
            typed = typed[:-1]
        elif question.type == "numeric":
            if not (key.isdigit() or key in ".,-"):
                continue
            typed += key
        else:
            key = key.lower()
            if key not in valid or (question.type == "order" and key in typed):
                continue
            # In a multiple-answer question a second press takes a letter back.
            typed = typed.replace(key, "") if key in typed else typed + key
        redraw()


def ask(
    items: list[tuple[Topic, "Question"]], attempt_id: int | None, title: str
) -> "list[tuple[Topic, Graded]] | None":
    """Ask each question, record and schedule each answer; None if the learner stops."""
    from rich.markdown import Markdown
    from rich.panel import Panel

    from sdtutor.cli.ui import console, interactive
    from sdtutor.content.models import LETTERS
    from sdtutor.progress.store import ProgressStore
    from sdtutor.review import describe_wait, record

    results: list[tuple[Topic, Graded]] = []
    with ProgressStore() as store:
        for number, (topic, question) in enumerate(items, start=1):
            origin = f" · {topic.slug}" if attempt_id is None else ""
            console.rule(
                f"[bold]{title} {number} of {len(items)}[/] "
                f"[dim]({KINDS[question.type]}{origin})[/]",
                align="left",
            )
            console.print(Markdown(question.prompt))
            for letter, choice in zip(LETTERS, question.choices, strict=False):
                console.print(f"  [bold]{letter})[/] {choice}")
            graded = _answer(question, number)
            if graded is None:
                console.print("Stopped; the answers so far are saved.")
                return None
            store.record_answer(
                attempt_id, topic.slug, question.id, graded.response, graded.correct
            )
            results.append((topic, graded))
            if graded.correct:
                head = "[bold green]✓ Right.[/]"
            else:
                head = f"[bold red]✗ Not quite.[/] The answer: [bold]{graded.right_answer}[/]"
            due = record(store, topic.slug, question.id, graded.correct)
            console.print(
                Panel(
                    Markdown(question.explanation),
                    title=head,
                    title_align="left",
                    subtitle=f"back for review {describe_wait(due)}",
                    subtitle_align="right",
                    border_style="green" if graded.correct else "red",
                )
            )
            if interactive() and number < len(items):
                console.print("[dim]\\[any key] next question  \\[q] stop[/]")
                if typer.getchar() in STOP_KEYS:
                    console.print("Stopped; the answers so far are saved.")
                    return None
    return results


def _answer(question: "Question", number: int) -> "Graded | None":
    """One graded answer: keystrokes at a terminal, a line of stdin otherwise."""
    from sdtutor.cli.ui import console, err, interactive
    from sdtutor.grading import BadResponse, Graded, grade

    while True:
        if interactive():
            response = _keys(question)
        else:
            try:
                response = input()
            except EOFError:
                return None
        if response is None:
            return None
        try:
            return grade(question, response)
        except BadResponse as exc:
            if not interactive():
                err.print(f"Question {number}: '{response}' is not an answer: {exc}")
                return Graded(question, response, False)
            console.print(f"[yellow]{exc}[/]")


def show_summary(results: "list[tuple[Topic, Graded]]", title: str) -> "Summary":
    """The score, the weakest ideas and the lesson sections to re-read."""
    from rich.markdown import Markdown
    from rich.panel import Panel

    from sdtutor.cli.ui import console
    from sdtutor.grading import summarise

    summary = summarise([g for _, g in results])
    lines = [f"**Score: {summary.correct} of {summary.total} ({summary.score:.0%})**"]
    if summary.missed_ideas:
        lines.append("\nIdeas to revisit: " + "; ".join(summary.missed_ideas[:5]) + ".")
    reread: dict[str, list[str]] = {}
    for topic, graded in results:
        section = graded.question.section
        if not graded.correct and section and section not in reread.setdefault(topic.slug, []):
            reread[topic.slug].append(section)
    for slug, sections in reread.items():
        if sections:
            lines.append(
                f"\nRe-read these sections: `sdtutor learn {slug}`, "
                + ", ".join(f"*{s}*" for s in sections)
                + "."
            )
    if summary.missed_ideas:
        lines.append("\nMissed questions come back for review within minutes; the rest later.")
    else:
        lines.append("\nEvery answer right.")
    console.print(
        Panel(
            Markdown("\n".join(lines)),
            title=title,
            title_align="left",
            border_style="green" if summary.score >= 0.8 else "yellow",
        )
    )
    return summary


def run_quiz(topic: Topic) -> "Summary | None":
    """Ask every question of a topic's quiz; return the Summary (None if stopped early)."""
    from sdtutor.content.course import Course
    from sdtutor.progress.store import ProgressStore

    quiz_data = Course().quiz(topic)
    with ProgressStore() as store:
        attempt = store.start_quiz(topic.slug, len(quiz_data.questions))
    results = ask([(topic, q) for q in quiz_data.questions], attempt_id=attempt, title="Question")
    if results is None:
        return None
    with ProgressStore() as store:
        store.finish_quiz(attempt)
    return show_summary(results, title="Quiz finished")
