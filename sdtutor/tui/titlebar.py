"""The title line at the top of each screen: the app's title and the screen's subtitle.

It looks like textual's Header, but is one widget instead of four (the Header composes an
icon, a title and a clock space, each with its own styles to apply and lay out before
the first frame).
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.content import Content
from textual.widget import Widget

ICON = "⭘"
ICON_WIDTH = 8  # the Header's icon cell, left
RIGHT_WIDTH = 10  # and the space its clock would take, right


class TitleBar(Widget, can_focus=False):
    """` ⭘   title — subtitle` centred, as textual's Header draws it; a click on the icon
    opens the command palette."""

    ALLOW_SELECT = False
    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        width: 100%;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = set()

    def on_mount(self) -> None:
        """Redraw when the title or the subtitle changes."""
        for node in (self.app, self.screen):
            self.watch(node, "title", self._changed, init=False)
            self.watch(node, "sub_title", self._changed, init=False)

    def _changed(self) -> None:
        self.refresh()

    def render(self) -> Content:
        """The icon, then the title and subtitle centred between the two side cells."""
        screen, app = self.screen, self.app
        title = screen.title if screen.title is not None else app.title
        sub_title = screen.sub_title if screen.sub_title is not None else app.sub_title
        middle = app.format_title(title, sub_title)
        space = max(self.size.width - ICON_WIDTH - RIGHT_WIDTH, 0)
        if middle.cell_length > space:
            middle = middle.truncate(space, ellipsis=True)
        left = (space - middle.cell_length) // 2
        icon = f" {ICON}".ljust(ICON_WIDTH) if app.ENABLE_COMMAND_PALETTE else " " * ICON_WIDTH
        return Content.assemble(icon, " " * left, middle)

    async def on_click(self, event: events.Click) -> None:
        """The icon opens the command palette, as in textual's Header."""
        if event.x < ICON_WIDTH and self.app.ENABLE_COMMAND_PALETTE:
            event.stop()
            await self.run_action("app.command_palette")


__all__ = ["TitleBar"]
