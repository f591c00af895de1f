"""`sdtutor list`: the twenty topics and where the learner stands.

Plain text on purpose: this is the command graders and scripts call most, and rich's
console alone would double its start-up time.
"""

import typer

STYLES = {"bold": "1", "dim": "2", "green": "32", "yellow": "33"}
STATUS_STYLE = {"read": "green", "passed": "green", "started": "yellow", "not written": "dim"}


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("list")(list_topics)


def _cell(text: str, width: int, style: str | None, colour: bool) -> str:
    padded = text.ljust(width)
    if colour and style:
        return f"\x1b[{STYLES[style]}m{padded}\x1b[0m"
    return padded


def list_topics(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and graders."),
) -> None:
    """List all topics with lesson, quiz and lab status."""
    from sdtutor.cli.ui import colour_enabled, dump_json
    from sdtutor.marks import PASS_MARK
    from sdtutor.status import course_status

    rows = course_status()
    if as_json:
        dump_json([r.to_json() for r in rows])
        return
    colour = colour_enabled()
    import shutil

    slug_width = max(len(r.topic.slug) for r in rows)
    title_width = max(len(r.topic.title) for r in rows)
    widths = [2, slug_width, 11, 11, 11]
    header = ["#", "topic", "lesson", "quiz", "lab"]
    # The title too, when the terminal is wide enough for it.
    wide = shutil.get_terminal_size((80, 24)).columns >= sum(widths) + title_width + 12
    if wide:
        widths.insert(2, title_width)
        header.insert(2, "")
    out = [_cell("sdtutor: backend system design in 20 topics", 0, "bold", colour), ""]
    out.append(
        "  ".join(_cell(h, w, "bold", colour) for h, w in zip(header, widths, strict=True)).rstrip()
    )
    for r in rows:
        if not r.quiz_written:
            quiz, quiz_style = "not written", "dim"
        elif r.quiz_best is None:
            quiz, quiz_style = "not taken", None
        else:
            quiz, quiz_style = (
                f"best {r.quiz_best:.0%}",
                "green" if r.quiz_best >= PASS_MARK else "yellow",
            )
        written = r.lesson != "not written"
        cells: list[tuple[str, str | None]] = [
            (str(r.topic.number).rjust(2), None),
            (r.topic.slug, "bold" if written else "dim"),
            (r.lesson, STATUS_STYLE.get(r.lesson)),
            (quiz, quiz_style),
            (r.lab, STATUS_STYLE.get(r.lab)),
        ]
        if wide:
            cells.insert(2, (r.topic.title, None if written else "dim"))
        line = "  ".join(
            _cell(text, w, style, colour) for (text, style), w in zip(cells, widths, strict=True)
        )
        out.append(line.rstrip())
    out += ["", "Start with `sdtutor next`, or `sdtutor learn TOPIC` (a number, slug or prefix)."]
    typer.echo("\n".join(out))
