"""Consoles and the error panel shared by every command."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from sdtutor.errors import SdtutorError

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console made on first use: importing rich.console costs ~60 ms, more than
    some commands (`sdtutor list`) are allowed for their whole start-up."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def real(self) -> Console:
        """The Console itself, for rich objects that take one (Progress, Live)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


console: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


def stderr_console() -> Console:
    """The real stderr Console, for rich objects that take one (Progress, Live)."""
    return err.real  # type: ignore[attr-defined]


def colour_enabled(stream: Any = None) -> bool:
    """Whether to colour plain output: a terminal, and NO_COLOR not set."""
    stream = stream or sys.stdout
    return (
        "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
        and hasattr(stream, "isatty")
        and stream.isatty()
    )


def interactive() -> bool:
    """Whether a person is at a terminal (both ends), so we may ask questions."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def show_error(error: SdtutorError) -> None:
    """What went wrong and what to do next, as a short panel on stderr."""
    from rich.panel import Panel
    from rich.text import Text

    body = Text(error.message, style="bold")
    if error.hint:
        body.append("\n" + error.hint, style="")
    err.print(Panel(body, title="sdtutor", title_align="left", border_style="red", expand=False))


def notice(message: str) -> None:
    """A warning the user should see, on stderr."""
    from rich.panel import Panel

    err.print(Panel(message, border_style="yellow", expand=False))


def dump_json(data: Any) -> None:
    """Print JSON to stdout exactly (no wrapping, no colour)."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


__all__ = [
    "colour_enabled",
    "console",
    "dump_json",
    "err",
    "interactive",
    "notice",
    "show_error",
    "stderr_console",
]
