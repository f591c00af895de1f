"""Rich renderings shared by commands: lessons, check results, plans."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from sdtutor.content.models import Lesson, Section
from sdtutor.lab.results import CheckResult, Evidence, plan_label


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


def plan_tree(plan: dict[str, Any], title: str) -> Tree:
    """A PostgreSQL JSON plan as a tree; Sort and Seq Scan nodes stand out."""

    def label(node: dict[str, Any]) -> Text:
        node_type = node.get("Node Type", "")
        style = "bold red" if node_type in ("Sort", "Seq Scan", "Incremental Sort") else "bold"
        text = Text()
        head, _, rest = plan_label(node).partition("  ")
        text.append(head, style=style)
        if rest:
            text.append("  " + rest, style="dim")
        return text

    tree = Tree(Text(title, style="italic"))

    def add(parent: Tree, node: dict[str, Any]) -> None:
        branch = parent.add(label(node))
        for child in node.get("Plans", []):
            add(branch, child)

    add(tree, plan)
    return tree


def evidence(item: Evidence) -> RenderableType:
    """One piece of evidence, rendered for its kind."""
    if item.kind == "plan":
        return plan_tree(item.data, item.title)
    if item.kind == "table":
        columns, rows = item.data
        table = Table(title=item.title, title_justify="left", title_style="italic")
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
        return table
    if item.kind == "sql":
        return Panel(
            Syntax(str(item.data), "sql", word_wrap=True),
            title=item.title,
            title_align="left",
            border_style="dim",
        )
    return Panel(Text(str(item.data)), title=item.title, title_align="left", border_style="dim")


# How each outcome shows in the one-line list: a timeout or a check that did not run is
# not the learner's failure, so it never wears the red cross.
_MARKS: dict[str, tuple[str, str, str]] = {
    "passed": ("✓", "bold green", ""),
    "failed": ("✗", "bold red", ""),
    "error": ("!", "bold yellow", "could not finish"),
    "timeout": ("◷", "bold yellow", "ran out of time"),
    "not run": ("·", "dim", "not run"),
}


def _check_line(r: CheckResult) -> Text:
    mark, style, label = _MARKS.get(r.status or "failed", _MARKS["failed"])
    line = Text(f"{mark} ", style=style) + Text(r.title, style="bold" if r.passed else "")
    if label:
        line += Text(f"  ({label})", style=style)
    return line


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
