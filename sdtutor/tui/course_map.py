"""The course map: the twenty topics, where the learner stands, and what to run next."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from sdtutor.content.course import Course
from sdtutor.content.models import Lesson
from sdtutor.errors import SdtutorError
from sdtutor.status import TopicStatus
from sdtutor.tui.lesson import LessonRecorder, LessonScreen

NOT_WRITTEN = "not written"
STYLES = {"read": "green", "passed": "green", "started": "yellow", NOT_WRITTEN: "dim"}
# Below this width the table spells "not written" as a dash, so all columns still fit.
WIDE = 88


def _cell(value: str, compact: bool = False) -> Text:
    label = "–" if compact and value == NOT_WRITTEN else value
    return Text(label, style=STYLES.get(value, ""))


def quiz_cell(row: TopicStatus, compact: bool = False) -> Text:
    """The quiz column: not written, not taken, or the best score so far."""
    if not row.quiz_written:
        return _cell(NOT_WRITTEN, compact)
    if row.quiz_best is None:
        return Text("not taken")
    return Text(f"best {row.quiz_best:.0%}", style="green" if row.quiz_best >= 0.8 else "yellow")


def commands(row: TopicStatus) -> list[str]:
    """The commands that work on this topic, the next step first."""
    slug = row.topic.slug
    available = {
        "lesson": (f"sdtutor learn {slug}", row.lesson != NOT_WRITTEN),
        "quiz": (f"sdtutor quiz {slug}", row.quiz_written),
        "lab": (f"sdtutor lab start {slug}", row.lab != NOT_WRITTEN),
    }
    order = ["lesson", "quiz", "lab"]
    if row.next_step:
        order.remove(row.next_step)
        order.insert(0, row.next_step)
    return [available[step][0] for step in order if available[step][1]]


class TopicTable(DataTable[Text]):
    """The topics table, with Enter shown in the footer (DataTable hides it)."""

    # Not a screen-level priority binding: that would run before a Down still queued here.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Read lesson")]


class CourseMapScreen(Screen[None]):
    """A table of the topics with a panel on the highlighted one."""

    DEFAULT_CSS = """
    CourseMapScreen #topics {
        height: 1fr;
        min-height: 5;
        scrollbar-size-vertical: 1;
    }
    CourseMapScreen #detail {
        height: 9;
        border: round $primary;
        border-title-color: $text;
        border-title-style: bold;
    }
    CourseMapScreen #about {
        width: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    CourseMapScreen #run {
        width: 40%;
        max-width: 44;
        height: 100%;
        padding: 0 1;
        border-left: vkey $primary 50%;
    }
    """

    def __init__(
        self,
        course: Course,
        status_source: Callable[[], list[TopicStatus]],
        recorder: LessonRecorder,
    ) -> None:
        super().__init__()
        self.course = course
        self.status_source = status_source
        self.recorder = recorder
        self.rows: list[TopicStatus] = []
        self._lessons: dict[str, Lesson | SdtutorError] = {}
        self._drawn_compact: bool | None = None

    def compose(self) -> ComposeResult:
        """Header, the topic table, the detail panel and the key bar."""
        yield Header()
        yield TopicTable(id="topics", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="detail"):
            with VerticalScroll(id="about"):
                yield Static(id="about-text")
            yield Static(id="run")
        yield Footer()

    def on_mount(self) -> None:
        """Focus the table (it is filled when the screen first shows, in on_screen_resume)."""
        self.query_one("#topics", DataTable).focus()

    def on_screen_resume(self) -> None:
        """Fill the table; and coming back from a lesson, show the progress it made."""
        self.reload()

    def on_resize(self, event: events.Resize) -> None:
        """Switch between the full and the compact table as the terminal changes size."""
        if self.rows and self.compact != self._drawn_compact:
            self.reload()

    @property
    def compact(self) -> bool:
        """Whether the terminal is too narrow for the words "not written"."""
        return self.size.width < WIDE

    def reload(self) -> None:
        """Read the status again and redraw the table, keeping the cursor where it was."""
        try:
            self.rows = self.status_source()
        except SdtutorError as error:
            self.notify(str(error), title="Cannot read progress", severity="error")
            return
        table = self.query_one("#topics", DataTable)
        cursor = table.cursor_row
        # Columns too: their widths only ever grow, and the compact table is narrower.
        table.clear(columns=True)
        self._drawn_compact = self.compact
        for label in ("#", "topic", "lesson", "quiz", "lab"):
            table.add_column(label, key=label)
        for row in self.rows:
            empty = row.lesson == NOT_WRITTEN and not row.quiz_written and row.lab == NOT_WRITTEN
            table.add_row(
                Text(str(row.topic.number), justify="right", style="dim" if empty else "bold"),
                Text(row.topic.title, style="dim" if empty else ""),
                _cell(row.lesson, self.compact),
                quiz_cell(row, self.compact),
                _cell(row.lab, self.compact),
                key=row.topic.slug,
            )
        if self.rows:
            table.move_cursor(row=min(max(cursor, 0), len(self.rows) - 1))
        self.show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Follow the cursor with the detail panel."""
        self.show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click) on a row opens its lesson."""
        self.open_lesson(event.cursor_row)

    @property
    def current(self) -> TopicStatus | None:
        """The highlighted topic."""
        row = self.query_one("#topics", DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def _lesson(self, row: TopicStatus) -> Lesson | SdtutorError | None:
        if row.lesson == NOT_WRITTEN:
            return None
        slug = row.topic.slug
        if slug not in self._lessons:
            try:
                self._lessons[slug] = self.course.lesson(row.topic)
            except SdtutorError as error:
                self._lessons[slug] = error
        return self._lessons[slug]

    def show_detail(self) -> None:
        """Describe the highlighted topic: summary and objectives left, what to run right."""
        row = self.current
        panel = self.query_one("#detail", Horizontal)
        about = self.query_one("#about-text", Static)
        run = self.query_one("#run", Static)
        if row is None:
            panel.border_title = panel.border_subtitle = ""
            about.update("")
            run.update("")
            return
        panel.border_title = f"{row.topic.number} · {row.topic.title}"
        lesson = self._lesson(row)
        panel.border_subtitle = f"{lesson.minutes} min read" if isinstance(lesson, Lesson) else ""
        about.update(self._about(row, lesson))
        run.update(self._run(row))
        self.query_one("#about", VerticalScroll).scroll_home(animate=False)

    def _about(self, row: TopicStatus, lesson: Lesson | SdtutorError | None) -> Text:
        out = Text()
        if isinstance(lesson, SdtutorError):
            out.append(f"This lesson cannot be read: {lesson}", style="red")
        elif lesson is None:
            out.append("The lesson is not written yet.", style="italic")
            if row.lesson == NOT_WRITTEN and not row.quiz_written and row.lab == NOT_WRITTEN:
                out.append(" Neither are the quiz and the lab.")
            ready = [r.topic for r in self.rows if r.lesson != NOT_WRITTEN]
            if ready:
                out.append("\n\nReady now: ", style="bold")
                out.append(", ".join(f"{t.number} {t.slug}" for t in ready), style="cyan")
        else:
            out.append(lesson.summary)
            if lesson.objectives:
                out.append("\nYou will be able to:", style="bold")
                for objective in lesson.objectives:
                    out.append(f"\n • {objective}")
        return out

    @staticmethod
    def _run(row: TopicStatus) -> Text:
        out = Text()
        steps = commands(row)
        if not steps:
            if row.lesson == NOT_WRITTEN:
                out.append("Nothing to run yet.", style="dim")
            else:
                out.append("All done here.\n", style="green")
                out.append("sdtutor review", style="bold cyan")
                out.append(" keeps it fresh.")
            return out
        out.append("Next\n", style="bold")
        out.append(f" {steps[0]}", style="bold cyan")
        if steps[0].startswith("sdtutor learn"):
            out.append("\n (or press Enter)", style="dim")
        if steps[1:]:
            out.append("\nThen\n", style="bold")
            out.append("\n".join(f" {step}" for step in steps[1:]), style="cyan")
        return out

    def open_lesson(self, index: int) -> None:
        """Open the lesson of the topic in this row, if it is written."""
        if not 0 <= index < len(self.rows):
            return
        row = self.rows[index]
        lesson = self._lesson(row)
        if lesson is None:
            self.notify(f"The lesson for {row.topic.slug} is not written yet.", severity="warning")
        elif isinstance(lesson, SdtutorError):
            self.notify(str(lesson), title="Cannot open the lesson", severity="error")
        else:
            self.app.push_screen(LessonScreen(lesson, self.recorder))


__all__ = ["CourseMapScreen", "TopicTable", "commands", "quiz_cell"]
