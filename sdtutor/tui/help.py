"""The help modal: the TUI's keys and the commands that do the rest."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("↑ / ↓", "choose a topic on the course map"),
    ("Enter", "read the topic's lesson"),
    ("n / → / Enter", "next section of a lesson"),
    ("p / ← / b", "previous section"),
    ("Esc", "back to the course map (closes this help too)"),
    ("?", "this help"),
    ("q", "quit"),
)

COMMANDS = (
    ("sdtutor learn TOPIC", "read a lesson in the plain terminal"),
    ("sdtutor next", "start the next unfinished step"),
    ("sdtutor quiz TOPIC", "take a topic's quiz"),
    ("sdtutor review", "review the questions that are due"),
    ("sdtutor lab start TOPIC", "start a hands-on lab on real services"),
    ("sdtutor lab check TOPIC", "check your work; also lab hint, watch, stop"),
    ("sdtutor progress", "what is done; progress export for an instructor"),
    ("sdtutor doctor", "which service providers work on this machine"),
)


def _table(title: str, rows: tuple[tuple[str, str], ...]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.title = Text(title, style="bold")
    table.title_justify = "left"
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in rows:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and commands, over whatever screen is open."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen #help {
        width: 78;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        border-title-style: bold;
        background: $surface;
        padding: 1 2;
    }
    HelpScreen .gap {
        height: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark", "close", "Close", priority=True)
    ]

    def compose(self) -> ComposeResult:
        """The two tables: keys here, commands in the shell."""
        with VerticalScroll(id="help") as box:
            box.border_title = "Help"
            box.border_subtitle = "Esc to close"
            yield Static(_table("Keys", KEYS))
            yield Static(classes="gap")
            yield Static(_table("In the shell (TOPIC: 7, indexing or index)", COMMANDS))

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss()


__all__ = ["COMMANDS", "KEYS", "HelpScreen"]
