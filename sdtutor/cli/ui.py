"""Consoles and the error panel shared by every command."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from sdtutor.errors import SdtutorError

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def interactive() -> bool:
    """Whether a person is at a terminal (both ends), so we may ask questions."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def show_error(error: SdtutorError) -> None:
    """What went wrong and what to do next, as a short panel on stderr."""
    body = Text(error.message, style="bold")
    if error.hint:
        body.append("\n" + error.hint, style="")
    err.print(Panel(body, title="sdtutor", title_align="left", border_style="red", expand=False))


def notice(message: str) -> None:
    """A warning the user should see, on stderr."""
    err.print(Panel(message, border_style="yellow", expand=False))


def dump_json(data: Any) -> None:
    """Print JSON to stdout exactly (no wrapping, no colour)."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


__all__ = ["console", "dump_json", "err", "interactive", "notice", "show_error"]
