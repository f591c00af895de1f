"""A lesson, one section at a time; reaching the last section records it as read, and
the reader opens where the learner left off (section and scroll line, kept in the store)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Markdown, Static

from sdtutor.content.models import Lesson
from sdtutor.tui.keybar import KeyBar
from sdtutor.tui.titlebar import TitleBar


class LessonScreen(Screen[None]):
    """One lesson; n / p move between sections, escape goes back to the map."""

    DEFAULT_CSS = """
    LessonScreen #bar {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    LessonScreen #where {
        width: 1fr;
        text-style: bold;
    }
    LessonScreen #dots {
        width: auto;
    }
    LessonScreen #body {
        height: 1fr;
        padding: 0 2;
    }
    LessonScreen #section {
        margin: 0;
    }
    """

    # Priority, so the scrolling body and the Markdown's links cannot swallow them.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next", "Next", priority=True),
        Binding("right,enter", "next", "Next", show=False, priority=True),
        Binding("p", "previous", "Previous", priority=True),
        Binding("left,b", "previous", "Previous", show=False, priority=True),
        Binding("escape", "back", "Course map", priority=True),
    ]

    def __init__(self, lesson: Lesson, already_read: bool = False) -> None:
        super().__init__()
        self.lesson = lesson
        self.index = 0
        self.line = 0
        self.seen = 0
        # A lesson read before is not recorded again (nor announced) on reaching its end.
        self.finished = already_read
        self._saved = False
        self._position_error = False

    @property
    def total(self) -> int:
        """How many sections the lesson has."""
        return len(self.lesson.sections)

    def compose(self) -> ComposeResult:
        """Header, where we are in the lesson, the section, and the key bar."""
        self.sub_title = f"{self.lesson.number} · {self.lesson.title}"
        yield TitleBar()
        with Horizontal(id="bar"):
            yield Static(id="where")
            yield Static(id="dots")
        with VerticalScroll(id="body"):
            yield Markdown(id="section")
        yield KeyBar()

    async def on_mount(self) -> None:
        """Open at the saved position (else the first section)."""
        saved = self._load_position()
        if saved is not None and self.total:
            self.index = min(max(saved[0], 0), self.total - 1)
            self.line = max(saved[1], 0)
        await self.show(line=self.line)
        self.query_one("#body").focus()

    def _load_position(self) -> tuple[int, int] | None:
        from sdtutor.progress.store import ProgressStore

        try:
            with ProgressStore() as store:
                return store.position(self.lesson.slug)
        except Exception as error:  # a dialog, never a traceback
            self.notify(str(error), title="Cannot read where you were", severity="warning")
            return None

    def save_position(self) -> None:
        """Remember the section and the first line shown, for the next visit."""
        from sdtutor.progress.store import ProgressStore

        if self._position_error:
            return
        line = int(self.query_one("#body", VerticalScroll).scroll_y)
        try:
            with ProgressStore() as store:
                store.save_position(self.lesson.slug, self.index, line)
        except Exception as error:  # a dialog, never a traceback
            self._position_error = True  # said once, not on every key
            self.notify(str(error), title="Cannot save where you are", severity="warning")

    def markdown(self) -> str:
        """The current section as Markdown (the lesson's intro goes before the first)."""
        if not self.lesson.sections:
            return self.lesson.intro or "*This lesson has no sections yet.*"
        section = self.lesson.sections[self.index]
        parts = [self.lesson.intro] if self.index == 0 and self.lesson.intro else []
        parts += [f"## {section.heading}", section.body]
        return "\n\n".join(parts)

    async def show(self, line: int = 0) -> None:
        """Draw the current section scrolled to `line`, and record the lesson once its end
        is reached."""
        total = self.total
        heading = self.lesson.sections[self.index].heading if total else ""
        self.query_one("#where", Static).update(
            f"Section {min(self.index + 1, total)}/{total} · {heading}"
        )
        dots = Text()
        for i in range(total):
            done = i <= self.index
            dots.append("●" if done else "○", style="green" if done else "dim")
        await self.query_one("#section", Markdown).update(self.markdown())
        body = self.query_one("#body", VerticalScroll)
        body.scroll_home(animate=False)
        if line:
            # The new section's height is known only after the next layout.
            self.call_after_refresh(body.scroll_to, y=line, animate=False)
        self.seen = max(self.seen, self.index + 1)
        if self.index >= total - 1 and not self.finished:
            self.finished = True
            if self._record(total, True):
                self.notify(
                    f"Lesson recorded as read. Next: sdtutor quiz {self.lesson.slug}",
                    title="End of the lesson",
                )
        if self.finished:
            dots.append("  ✓ read", style="bold green")
        else:
            dots.append(f"  {self.lesson.minutes} min", style="dim")
        self.query_one("#dots", Static).update(dots)

    def _record(self, sections: int, finished: bool) -> bool:
        from sdtutor.progress.store import ProgressStore

        try:
            with ProgressStore() as store:
                store.record_lesson(self.lesson.slug, sections, finished=finished)
        except Exception as error:  # a dialog, never a traceback
            self.notify(str(error), title="Progress not saved", severity="error")
            return False
        return True

    def save_progress(self) -> None:
        """Leaving: remember the position; before the end, record how many sections were
        read (once)."""
        self.save_position()
        if not self.finished and not self._saved and self.seen:
            self._saved = True
            self._record(self.seen, False)

    async def action_next(self) -> None:
        """The next section; past the last one, back to the map."""
        if self.index < self.total - 1:
            self.index += 1
            await self.show()
            self.save_position()
        else:
            self.action_back()

    async def action_previous(self) -> None:
        """The previous section."""
        if self.index > 0:
            self.index -= 1
            await self.show()
            self.save_position()

    def action_back(self) -> None:
        """Back to the course map."""
        self.save_progress()
        self.dismiss()


__all__ = ["LessonScreen"]
