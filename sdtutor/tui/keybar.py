"""The key bar at the bottom of each screen: the keys that work here, as one line of text.

It looks like textual's Footer, but draws as one widget instead of one per key: the
Footer composes its keys only after the first frame and lays out a widget for each,
which put the course map's key bar a tenth of a second behind the rest of the screen.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


class KeyBar(Widget, can_focus=False):
    """The screen's shown bindings (key and description), the command palette's on the
    right; a click on a key presses it."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "keybar--key",
        "keybar--description",
        "keybar--disabled",
    }
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        width: 1fr;
        color: $footer-foreground;
        background: $footer-background;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    KeyBar > .keybar--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyBar > .keybar--description {
        color: $footer-description-foreground;
        background: $footer-description-background;
    }
    KeyBar > .keybar--disabled {
        text-style: dim;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._spans: list[tuple[int, int, str]] = []  # (from, to, key) for clicks

    def on_mount(self) -> None:
        """Redraw when the screen's keys change (focus moved, an action disabled)."""
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        """Stop listening to the screen."""
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        self.refresh()

    def _keys(self) -> tuple[list[tuple[str, str, str, bool]], tuple[str, str, str] | None]:
        """(key, shown as, description, enabled) for each shown binding, one per action;
        and the command palette's key, if the app has one."""
        app = self.app
        seen: set[str] = set()
        keys = []
        palette = None
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if app.ENABLE_COMMAND_PALETTE and binding.key == app.COMMAND_PALETTE_BINDING:
                palette = (binding.key, app.get_key_display(binding), binding.description)
                continue
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            keys.append((binding.key, app.get_key_display(binding), binding.description, enabled))
        return keys, palette

    def render(self) -> Text:
        """One line: ` key description ` for each key; the palette's at the right end."""
        key_style = self.get_component_rich_style("keybar--key")
        text_style = self.get_component_rich_style("keybar--description")
        dim = self.get_component_rich_style("keybar--disabled")
        keys, palette = self._keys()
        line = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []
        for key, shown, description, enabled in keys:
            start = line.cell_len
            extra = dim if not enabled else None
            line.append(f" {shown} ", key_style + extra if extra else key_style)
            line.append(f"{description} ", text_style + extra if extra else text_style)
            self._spans.append((start, line.cell_len, key))
        if palette is not None:
            key, shown, description = palette
            right = Text.assemble(("▏", self.rich_style + text_style), (shown, key_style))
            right.append(f" {description} ", text_style)
            gap = self.size.width - line.cell_len - right.cell_len
            if gap >= 1:
                line.append(" " * gap)
                self._spans.append((line.cell_len, line.cell_len + right.cell_len, key))
                line.append_text(right)
        return line

    def on_click(self, event: events.Click) -> None:
        """A click on a key presses it."""
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return


__all__ = ["KeyBar"]
