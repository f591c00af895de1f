"""Rich renderings shared by commands: lessons, check results, plans."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from sdtutor.content.models import Lesson, Section
from sdtutor.evidence_view import check_line as _check_line
from sdtutor.evidence_view import evidence, plan_tree
from sdtutor.lab.results import CheckResult


def lesson_header(lesson: Lesson) -> RenderableType:
    """Title, summary, reading time and objectives."""
    objectives = "\n".join(f"- {o}" for o in lesson.objectives)
    body = Markdown(
        f"*{lesson.summary}*\n\n"
        f"About {lesson.minutes} minutes. You will be able to:\n\n{objectives}"
    )
    return Panel(body, title=f"[bold]{lesson.number}. {lesson.title}[/]", title_align="left")


def section(lesson: Lesson, index: int) -> RenderableType:
    """One section of a lesson, with where it stands."""
    sec: Section = lesson.sections[index]
    return Group(
        Rule(f"[bold]{sec.heading}[/]  [dim]{index + 1}/{len(lesson.sections)}[/]", align="left"),
        Markdown(sec.body),
    )


def lesson_page(lesson: Lesson, index: int) -> RenderableType:
    """What the reader shows for one section: the first one opens with the lesson's
    header, so title and objectives come before the text."""
    if index == 0:
        return Group(lesson_header(lesson), section(lesson, 0))
    return section(lesson, index)


def to_lines(renderable: RenderableType, width: int) -> list[str]:
    """`renderable` rendered at `width` columns as lines of ANSI-styled text, styled for
    this terminal (no colour under NO_COLOR)."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=True, highlight=False).print(renderable)
    return buf.getvalue().split("\n")


def _detail(r: CheckResult, with_evidence: bool) -> list[RenderableType]:
    border = {"passed": "green", "failed": "red"}.get(r.status or "", "yellow")
    parts: list[RenderableType] = [Panel(Text(r.message), border_style=border, padding=(0, 1))]
    if with_evidence:
        parts.extend(evidence(e) for e in r.evidence)
    return parts


def check_results(
    results: list[CheckResult], verbose: bool = False, topic: str | None = None
) -> RenderableType:
    """One line per check, then the first problem with its evidence (`verbose`: every
    check's message and evidence), then the count."""
    parts: list[RenderableType] = []
    if verbose:
        for r in results:
            parts.append(_check_line(r) + Text(f"  [{r.id}]", style="dim"))
            parts.extend(_detail(r, True))
            parts.append(Text(""))
    else:
        parts.extend(_check_line(r) for r in results)
        first = next((r for r in results if not r.passed and r.status != "not run"), None)
        if first is not None:
            heading = {"error": "Could not finish", "timeout": "Ran out of time"}.get(
                first.status or "", "First failure"
            )
            parts.append(Text(""))
            parts.append(
                Text(f"{heading}: ", style="bold")
                + Text(first.title, style="bold")
                + Text(f"  [{first.id}]", style="dim")
            )
            parts.extend(_detail(first, True))
        parts.append(Text(""))
    passed = sum(r.passed for r in results)
    style = "bold green" if passed == len(results) else "bold yellow"
    summary = Text(f"{passed} of {len(results)} checks pass.", style=style)
    problems = len(results) - passed
    if not verbose and problems > 1:
        command = f"sdtutor lab check {topic} --verbose" if topic else "--verbose"
        summary += Text(f" `{command}` shows every check's message and evidence.", style="dim")
    parts.append(summary)
    return Group(*parts)


__all__ = [
    "check_results",
    "evidence",
    "lesson_header",
    "lesson_page",
    "plan_tree",
    "section",
    "to_lines",
]
