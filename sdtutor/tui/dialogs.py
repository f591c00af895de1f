"""Modal dialogs: an error that says what to do, a yes/no question, a short message."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sdtutor.errors import SdtutorError

DIALOG_CSS = """
{name} {{
    align: center middle;
    background: $background 60%;
}}
{name} #box {{
    width: 70;
    max-width: 100%;
    height: auto;
    max-height: 90%;
    border: round {colour};
    border-title-style: bold;
    border-subtitle-color: $text-muted;
    background: $surface;
    padding: 1 2;
}}
"""


def describe(error: BaseException) -> tuple[str, str]:
    """(what went wrong, what to do) for any exception a screen catches."""
    if isinstance(error, SdtutorError):
        return error.message, error.hint
    # Not one of ours: still a sentence and a next step, never a traceback.
    detail = str(error).strip() or type(error).__name__
    return (
        f"Something unexpected went wrong: {detail}",
        "Try again; if it keeps happening, run the same step with the `sdtutor` command "
        "for more detail, and report it.",
    )


class ErrorScreen(ModalScreen[None]):
    """What went wrong, and what to do next. Enter or Esc closes it."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ErrorScreen", colour="$error")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,space", "close", "Close", priority=True)
    ]

    def __init__(self, error: BaseException, title: str = "That did not work") -> None:
        super().__init__()
        self.message, self.hint = describe(error)
        self.title_text = title

    def compose(self) -> ComposeResult:
        """The message in bold, the hint under it."""
        text = Text(self.message, style="bold")
        if self.hint:
            text.append("\n\n")
            text.append(self.hint)
        with VerticalScroll(id="box") as box:
            box.border_title = self.title_text
            box.border_subtitle = "Enter to close"
            yield Static(text, id="error-text")

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss()


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y or Enter says yes, n or Esc says no."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen", colour="$warning")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes", priority=True),
        Binding("n,escape", "answer(False)", "No", priority=True),
    ]

    def __init__(self, title: str, question: str) -> None:
        super().__init__()
        self.title_text = title
        self.question = question

    def compose(self) -> ComposeResult:
        """The question and the keys."""
        text = Text(self.question)
        text.append("\n\n")
        text.append("y", style="bold")
        text.append(" yes    ")
        text.append("n", style="bold")
        text.append(" no")
        with VerticalScroll(id="box") as box:
            box.border_title = self.title_text
            yield Static(text)

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)


class MessageScreen(ModalScreen[None]):
    """A short Markdown text (a hint, say) over the current screen."""

    DEFAULT_CSS = (
        DIALOG_CSS.format(name="MessageScreen", colour="$accent")
        + """
    MessageScreen.wide #box {
        width: 100;
        padding: 0 1;
    }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,space", "close", "Close", priority=True)
    ]

    def __init__(
        self, title: str, text: str, subtitle: str = "Enter to close", wide: bool = False
    ) -> None:
        super().__init__(classes="wide" if wide else None)
        self.title_text = title
        self.text = text
        self.subtitle = subtitle

    def compose(self) -> ComposeResult:
        """The text in a box."""
        from rich.markdown import Markdown  # ~100 ms: not at start-up, only for a hint

        with VerticalScroll(id="box") as box:
            box.border_title = self.title_text
            box.border_subtitle = self.subtitle
            yield Static(Markdown(self.text), id="message-text")

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss()


__all__ = ["ConfirmScreen", "ErrorScreen", "MessageScreen", "describe"]
