"""A lesson, one section at a time; reaching the last section records it as read."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Markdown, Static

from sdtutor.content.models import Lesson
from sdtutor.errors import SdtutorError

# (slug, sections read, finished) -> None; the app's default writes the progress store.
LessonRecorder = Callable[[str, int, bool], None]


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

    def __init__(self, lesson: Lesson, recorder: LessonRecorder) -> None:
        super().__init__()
        self.lesson = lesson
        self.recorder = recorder
        self.index = 0
        self.seen = 0
        self.finished = False
        self._saved = False

    @property
    def total(self) -> int:
        """How many sections the lesson has."""
        return len(self.lesson.sections)

    def compose(self) -> ComposeResult:
        """Header, where we are in the lesson, the section, and the key bar."""
        self.sub_title = f"{self.lesson.number} · {self.lesson.title}"
        yield Header()
        with Horizontal(id="bar"):
            yield Static(id="where")
            yield Static(id="dots")
        with VerticalScroll(id="body"):
            yield Markdown(id="section")
        yield Footer()

    async def on_mount(self) -> None:
        """Show the first section."""
        await self.show()
        self.query_one("#body").focus()

    def markdown(self) -> str:
        """The current section as Markdown (the lesson's intro goes before the first)."""
        if not self.lesson.sections:
            return self.lesson.intro or "*This lesson has no sections yet.*"
        section = self.lesson.sections[self.index]
        parts = [self.lesson.intro] if self.index == 0 and self.lesson.intro else []
        parts += [f"## {section.heading}", section.body]
        return "\n\n".join(parts)

    async def show(self) -> None:
        """Draw the current section, and record the lesson once its end is reached."""
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
        self.query_one("#body", VerticalScroll).scroll_home(animate=False)
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
        try:
            self.recorder(self.lesson.slug, sections, finished)
        except SdtutorError as error:
            self.notify(str(error), title="Progress not saved", severity="error")
            return False
        return True

    def save_progress(self) -> None:
        """Leaving before the end: record how many sections were read (once)."""
        if not self.finished and not self._saved and self.seen:
            self._saved = True
            self._record(self.seen, False)

    async def action_next(self) -> None:
        """The next section; past the last one, back to the map."""
        if self.index < self.total - 1:
            self.index += 1
            await self.show()
        else:
            self.action_back()

    async def action_previous(self) -> None:
        """The previous section."""
        if self.index > 0:
            self.index -= 1
            await self.show()

    def action_back(self) -> None:
        """Back to the course map."""
        self.save_progress()
        self.dismiss()


__all__ = ["LessonRecorder", "LessonScreen"]
