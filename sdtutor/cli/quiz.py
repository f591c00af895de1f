"""`sdtutor quiz TOPIC`: questions, the answer and its explanation after each, a score."""

import typer

from sdtutor.topics import Topic


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("quiz")(quiz)


def quiz(
    topic: str = typer.Argument(..., help="Number, slug or unambiguous prefix."),
) -> None:
    """Take a topic's quiz. Without a terminal, answers are read one per line from stdin."""
    from sdtutor.topics import resolve

    summary = run_quiz(resolve(topic))
    if summary is not None and summary.correct < summary.total:
        raise typer.Exit(1)


def _prompt_for(question_type: str, count: int) -> str:
    from sdtutor.content.models import LETTERS

    letters = LETTERS[:count]
    if question_type == "single":
        return f"Your answer ({'/'.join(letters)})"
    if question_type == "multiple":
        return f"Your answer: every right letter (e.g. {letters[0]}{letters[-1]})"
    if question_type == "order":
        return f"Your order: all letters, first to last (e.g. {letters[::-1]})"
    if question_type == "truefalse":
        return "True or false (t/f)"
    return "Your answer (a number)"


def _read(question_type: str, count: int) -> str | None:
    """One response; single keystrokes where one key is a whole answer."""

    from sdtutor.cli.ui import console, interactive

    prompt = _prompt_for(question_type, count)
    try:
        if interactive() and question_type in ("single", "truefalse"):
            console.print(f"[bold]{prompt}[/] ", end="")
            key = typer.getchar()
            console.print(key)
            return None if key in ("\x1b", "\x03", "q") else key
        if interactive():
            return str(typer.prompt(prompt, prompt_suffix=": "))
        line = input()
        return line
    except EOFError:
        return None


def run_quiz(topic: Topic):  # type: ignore[no-untyped-def]
    """Ask every question; record each answer; return the Summary (None if quit early)."""
    from rich.markdown import Markdown
    from rich.panel import Panel

    from sdtutor.cli.ui import console, err, interactive
    from sdtutor.content.course import Course
    from sdtutor.content.models import LETTERS
    from sdtutor.grading import BadResponse, grade, summarise
    from sdtutor.progress.store import ProgressStore

    quiz = Course().quiz(topic)
    results = []
    with ProgressStore() as store:
        attempt = store.start_quiz(topic.slug, len(quiz.questions))
        for number, question in enumerate(quiz.questions, start=1):
            kind = {
                "single": "one answer",
                "multiple": "one or more answers",
                "order": "put in order",
                "truefalse": "true or false",
                "numeric": "a number",
            }[question.type]
            console.rule(
                f"[bold]Question {number} of {len(quiz.questions)}[/] [dim]({kind})[/]",
                align="left",
            )
            console.print(Markdown(question.prompt))
            for letter, choice in zip(LETTERS, question.choices, strict=False):
                console.print(f"  [bold]{letter})[/] {choice}")
            while True:
                response = _read(question.type, len(question.choices))
                if response is None:
                    console.print("Quiz stopped; the answers so far are saved.")
                    return None
                try:
                    graded = grade(question, response)
                    break
                except BadResponse as exc:
                    if not interactive():
                        err.print(f"Question {number}: '{response}' is not an answer: {exc}")
                        graded = None
                        break
                    console.print(f"[yellow]{exc}[/]")
            if graded is None:
                from sdtutor.grading import Graded

                graded = Graded(question, response, False)
            store.record_answer(attempt, topic.slug, question.id, graded.response, graded.correct)
            results.append(graded)
            if graded.correct:
                head = "[bold green]✓ Right.[/]"
            else:
                head = f"[bold red]✗ Not quite.[/] The answer: [bold]{graded.right_answer}[/]"
            console.print(
                Panel(
                    Markdown(question.explanation),
                    title=head,
                    title_align="left",
                    border_style="green" if graded.correct else "red",
                )
            )
            if interactive() and number < len(quiz.questions):
                console.print("[dim]\\[Enter] next question  \\[q] stop[/]")
                if typer.getchar() in ("q", "\x1b", "\x03"):
                    console.print("Quiz stopped; the answers so far are saved.")
                    return None
        store.finish_quiz(attempt)
    summary = summarise(results)
    lines = [f"**Score: {summary.correct} of {summary.total} ({summary.score:.0%})**"]
    if summary.missed_ideas:
        lines.append("\nIdeas to revisit: " + "; ".join(summary.missed_ideas[:5]) + ".")
    if summary.sections:
        lines.append(
            f"\nRe-read these sections: `sdtutor learn {topic.slug}`, "
            + ", ".join(f"*{s}*" for s in summary.sections)
            + "."
        )
    if not summary.missed_ideas:
        lines.append("\nEvery answer right.")
    console.print(
        Panel(
            Markdown("\n".join(lines)),
            title="Quiz finished",
            title_align="left",
            border_style="green" if summary.score >= 0.8 else "yellow",
        )
    )
    return summary
