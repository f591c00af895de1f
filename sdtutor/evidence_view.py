"""Check results and their evidence as rich renderables, for both the command line and
the TUI: PostgreSQL plans as trees, result tables, SQL, text, and one line per check.

Core: rich only (no textual, no typer), so either front end can draw with it.
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from sdtutor.lab.results import CheckResult, Evidence, plan_label

# Plan nodes that usually mean an index is missing or unused.
COSTLY_NODES = ("Sort", "Seq Scan", "Incremental Sort")

# How each outcome shows: (mark, style, note). A timeout or a check that did not run is
# not the learner's failure, so it never wears the red cross.
MARKS: dict[str, tuple[str, str, str]] = {
    "passed": ("✓", "bold green", ""),
    "failed": ("✗", "bold red", ""),
    "error": ("!", "bold yellow", "could not finish"),
    "timeout": ("◷", "bold yellow", "ran out of time"),
    "not run": ("·", "dim", "not run"),
}


def plan_tree(plan: dict[str, Any], title: str) -> Tree:
    """A PostgreSQL JSON plan as a tree; Sort and Seq Scan nodes stand out."""

    def label(node: dict[str, Any]) -> Text:
        style = "bold red" if node.get("Node Type", "") in COSTLY_NODES else "bold"
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


def evidence(item: Evidence, code_background: str | None = None) -> RenderableType:
    """One piece of evidence, drawn for its kind. `code_background`: the SQL's background
    colour ("default" takes the surrounding one, as in the TUI; None: the theme's)."""
    if item.kind == "plan":
        return plan_tree(item.data, item.title)
    if item.kind == "table":
        columns, rows = item.data
        table = Table(title=item.title, title_justify="left", title_style="italic")
        for col in columns:
            table.add_column(str(col))
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
        return table
    if item.kind == "sql":
        return Panel(
            Syntax(str(item.data), "sql", word_wrap=True, background_color=code_background),
            title=item.title,
            title_align="left",
            border_style="dim",
        )
    return Panel(Text(str(item.data)), title=item.title, title_align="left", border_style="dim")


def check_line(r: CheckResult) -> Text:
    """A check as one line: its mark, its title, and why it did not pass if that was not
    the learner's doing."""
    mark, style, label = MARKS.get(r.status or "failed", MARKS["failed"])
    line = Text(f"{mark} ", style=style) + Text(r.title, style="bold" if r.passed else "")
    if label:
        line += Text(f"  ({label})", style=style)
    return line


__all__ = ["COSTLY_NODES", "MARKS", "check_line", "evidence", "plan_tree"]
