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
    ("Course map", ""),
    ("↑ / ↓", "choose a topic"),
    ("Enter / z / b", "its lesson / its quiz / its lab"),
    ("n", "start the next step (due reviews first, as sdtutor next)"),
    ("r", "review the questions that are due"),
    ("Lesson", ""),
    ("n / → / Enter", "next section (you come back where you left off)"),
    ("p / ← / b", "previous section"),
    ("Quiz and review", ""),
    ("a–f", "answer; several then Enter, or in order then Enter"),
    ("t / f", "true or false"),
    ("0–9 . -", "a number, then Enter; Backspace undoes"),
    ("Enter", "after an answer: the next question"),
    ("Lab", ""),
    ("s / c / h", "start it / check your work / one more hint"),
    ("w", "watch: check again each time a workspace file changes"),
    ("r / x", "reset it to the start / stop it (the workspace stays)"),
    ("1 2 3 / u", "task, services, checks / show the passwords"),
    ("v", "the reference solution, once the lab has passed"),
    ("Anywhere", ""),
    ("Esc", "back to the course map (closes this help too)"),
    ("Ctrl+T", "light or dark theme (remembered for next time)"),
    ("? / q", "this help / quit (answers are saved as you give them)"),
)

COMMANDS = (
    ("sdtutor learn TOPIC", "read a lesson in the plain terminal"),
    ("sdtutor lab shell TOPIC", "a SQL / Redis shell on the lab's service"),
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
        if what:
            table.add_row(key, what)
        else:  # a heading
            table.add_row(Text(key, style="bold underline"), "")
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
