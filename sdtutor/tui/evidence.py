"""Check results for the lab screen: every check with its message, and the evidence for
those that did not pass. The drawing of each line and each piece of evidence is the
command line's (sdtutor.evidence_view)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from sdtutor.evidence_view import check_line, evidence
from sdtutor.lab.results import CheckResult


def check_results(results: list[CheckResult], verbose: bool = False) -> RenderableType:
    """How many pass, then each check as passed or not, its message, and the evidence for
    those that failed (`verbose`: for all)."""
    parts: list[RenderableType] = []
    passed = sum(r.passed for r in results)
    style = "bold green" if passed == len(results) else "bold yellow"
    parts.append(Text(f"{passed} of {len(results)} checks pass.", style=style))
    parts.append(Text(""))
    for r in results:
        parts.append(check_line(r))
        border = {"passed": "green", "failed": "red"}.get(r.status or "", "yellow")
        parts.append(Panel(Text(r.message), border_style=border, padding=(0, 1)))
        if not r.passed or verbose:
            # "default": the SQL on the screen's own background, not the code theme's.
            parts.extend(evidence(e, code_background="default") for e in r.evidence)
        parts.append(Text(""))
    return Group(*parts)


__all__ = ["check_results"]
