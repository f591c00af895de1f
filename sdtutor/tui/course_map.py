"""The course map: the twenty topics, where the learner stands, and the real next step."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from sdtutor.content.course import Course
from sdtutor.content.models import Lesson
from sdtutor.errors import SdtutorError
from sdtutor.marks import PASS_MARK
from sdtutor.status import NextStep, TopicStatus, choose_next
from sdtutor.tui.keybar import KeyBar
from sdtutor.tui.titlebar import TitleBar

NOT_WRITTEN = "not written"
STYLES = {"read": "green", "passed": "green", "started": "yellow", NOT_WRITTEN: "dim"}
# Below this width the table spells "not written" as a dash, so all columns still fit.
WIDE = 88
COLUMNS = ("#", "topic", "lesson", "quiz", "lab")


def _cell(value: str, compact: bool = False) -> Text:
    label = "–" if compact and value == NOT_WRITTEN else value
    return Text(label, style=STYLES.get(value, ""))


def quiz_cell(row: TopicStatus, compact: bool = False) -> Text:
    """The quiz column: not written, not taken, or the best score so far."""
    if not row.quiz_written:
        return _cell(NOT_WRITTEN, compact)
    if row.quiz_best is None:
        return Text("not taken")
    style = "green" if row.quiz_best >= PASS_MARK else "yellow"
    return Text(f"best {row.quiz_best:.0%}", style=style)


def describe_next(step: NextStep) -> Text:
    """The next step as one line for the top of the map."""
    out = Text("Next: ", style="bold")
    if step.kind == "review":
        out.append(f"{step.due} question{'s' if step.due != 1 else ''} due for review")
    elif step.row is not None:
        out.append(f"the {step.kind} of {step.row.topic.number}. {step.row.topic.title}")
    else:
        out.append("everything written so far is done. Well played.", style="green")
        return out
    out.append("   ")
    out.append(" n ", style="bold reverse")
    out.append(" starts it", style="dim")
    return out


class TopicTable(DataTable[Text]):
    """The topics table, with Enter shown in the footer (DataTable hides it)."""

    # Not a screen-level priority binding: that would run before a Down still queued here.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Lesson")]


class CourseMapScreen(Screen[None]):
    """A table of the topics, the next step above it, and a panel on the highlighted one."""

    DEFAULT_CSS = """
    CourseMapScreen #next {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
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
        width: 30;
        height: 100%;
        padding: 0 1;
        border-left: vkey $primary 50%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("z", "quiz", "Quiz"),
        Binding("b", "lab", "Lab"),
        Binding("n", "next", "Next step"),
        Binding("r", "review", "Review"),
    ]

    def __init__(self, course: Course) -> None:
        super().__init__()
        self.course = course
        self.rows: list[TopicStatus] = []
        self.suggestion = NextStep("done")
        self._lessons: dict[str, Lesson | SdtutorError] = {}
        self._drawn_compact: bool | None = None
        self._status_failed = False
        self._just_mounted = False

    def compose(self) -> ComposeResult:
        """Header, the next step, the topic table, the detail panel and the key bar."""
        yield TitleBar()
        yield Static(id="next")
        yield TopicTable(id="topics", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="detail"):
            with VerticalScroll(id="about"):
                yield Static(id="about-text")
            yield Static(id="run")
        yield KeyBar()

    def on_mount(self) -> None:
        """Fill the table and focus it, before the first frame is drawn."""
        self.query_one("#topics", DataTable).focus()
        self.reload()
        self._just_mounted = True

    def on_screen_resume(self) -> None:
        """Coming back from a lesson, quiz or lab, show the progress made there."""
        if self._just_mounted:  # the first showing: filled a moment ago, in on_mount
            self._just_mounted = False
            return
        self.reload()

    def on_resize(self, event: events.Resize) -> None:
        """Switch between the full and the compact table as the terminal changes size."""
        if self.rows and self.compact != self._drawn_compact:
            self.reload()

    @property
    def compact(self) -> bool:
        """Whether the terminal is too narrow for the words "not written"."""
        return self.size.width < WIDE

    def read_status(self) -> tuple[list[TopicStatus], int]:
        """Every topic's status and how many review questions are due, in one store visit."""
        from sdtutor.progress.store import ProgressStore
        from sdtutor.review import outlook
        from sdtutor.status import course_status

        with ProgressStore() as store:
            rows = course_status(self.course, store)
            due = len(outlook(store, self.course).due)
        return rows, due

    def reload(self) -> None:
        """Read the status again and redraw the table, keeping the cursor where it was."""
        try:
            self.rows, due = self.read_status()
        except Exception as error:  # a dialog, never a traceback
            # Once as a dialog; closing it shows the map again, which must not reopen it.
            if not self._status_failed:
                self._status_failed = True
                self.app.report(error, "Cannot read your progress")  # type: ignore[attr-defined]
            self.query_one("#next", Static).update(
                Text("Your progress cannot be read; see the message it gave.", style="red")
            )
            return
        self._status_failed = False
        self.suggestion = choose_next(self.rows, due)
        self.query_one("#next", Static).update(describe_next(self.suggestion))
        table = self.query_one("#topics", DataTable)
        cursor = table.cursor_row
        # Columns too: their widths only ever grow, and the compact table is narrower.
        table.clear(columns=True)
        self._drawn_compact = self.compact
        cells = []
        for row in self.rows:
            empty = row.lesson == NOT_WRITTEN and not row.quiz_written and row.lab == NOT_WRITTEN
            cells.append(
                (
                    Text(str(row.topic.number), justify="right", style="dim" if empty else "bold"),
                    Text(row.topic.title, style="dim" if empty else ""),
                    _cell(row.lesson, self.compact),
                    quiz_cell(row, self.compact),
                    _cell(row.lab, self.compact),
                )
            )
        # Widths given, not measured: the table measures its cells only once idle, so
        # without them the first frame would show every column squeezed.
        for i, label in enumerate(COLUMNS):
            width = max([len(label), *(c[i].cell_len for c in cells)])
            table.add_column(label, key=label, width=width)
        for row, values in zip(self.rows, cells, strict=True):
            table.add_row(*values, key=row.topic.slug)
        if self.rows:
            table.move_cursor(row=min(max(cursor, 0), len(self.rows) - 1))
        self.show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Follow the cursor with the detail panel."""
        self.show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click) on a row opens its lesson."""
        if 0 <= event.cursor_row < len(self.rows):
            self.open_lesson(self.rows[event.cursor_row])

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
        """Describe the highlighted topic: summary and objectives left, its steps right."""
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
        run.update(self._steps(row))
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
    def _steps(row: TopicStatus) -> Text:
        """The topic's three steps with their state and key; the one left to do marked."""
        quiz = (
            NOT_WRITTEN
            if not row.quiz_written
            else "not taken"
            if row.quiz_best is None
            else f"best {row.quiz_best:.0%}"
        )
        steps = (
            ("lesson", "Lesson", row.lesson, "Enter", row.lesson in ("read",)),
            ("quiz", "Quiz", quiz, "z", row.quiz_best is not None),
            ("lab", "Lab", row.lab, "b", row.lab == "passed"),
        )
        out = Text()
        for i, (step, name, state, key, done) in enumerate(steps):
            if i:
                out.append("\n")
            written = state != NOT_WRITTEN
            mark = "✓" if done else ("▸" if row.next_step == step else " ")
            out.append(f"{mark} ", style="bold green" if done else "bold cyan")
            out.append(f"{name:<7}", style="bold" if written else "dim")
            out.append(f"{state:<12}", style=STYLES.get(state, "") if written else "dim")
            if written:
                out.append(f" {key}", style="bold cyan")
        if row.next_step is None and row.lesson != NOT_WRITTEN:
            out.append("\n\nAll done here. ", style="green")
            out.append("r", style="bold cyan")
            out.append(" reviews keep it fresh.")
        return out

    # ---------------------------------------------------------------- actions

    def open_lesson(self, row: TopicStatus) -> None:
        """Open the lesson of this topic, if it is written."""
        from sdtutor.tui.lesson import LessonScreen

        lesson = self._lesson(row)
        if lesson is None:
            self.notify(f"The lesson for {row.topic.slug} is not written yet.", severity="warning")
        elif isinstance(lesson, SdtutorError):
            self.app.report(lesson, "Cannot open the lesson")  # type: ignore[attr-defined]
        else:
            self.app.push_screen(LessonScreen(lesson, already_read=row.lesson == "read"))

    def open_quiz(self, row: TopicStatus) -> None:
        """Start this topic's quiz, if it is written."""
        from sdtutor.tui.quiz import QuizScreen

        if not row.quiz_written:
            self.notify(f"The quiz for {row.topic.slug} is not written yet.", severity="warning")
            return
        try:
            screen = QuizScreen.for_quiz(row.topic, self.course.quiz(row.topic))
        except Exception as error:  # a dialog, never a traceback
            self.app.report(error, "Cannot open the quiz")  # type: ignore[attr-defined]
            return
        self.app.push_screen(screen)

    def open_lab(self, row: TopicStatus, start: bool = False) -> None:
        """Open this topic's lab screen (and start the lab, for the next step)."""
        from sdtutor.tui.lab import LabScreen

        if row.lab == NOT_WRITTEN:
            self.notify(f"The lab for {row.topic.slug} is not written yet.", severity="warning")
            return
        try:
            lab = self.course.lab(row.topic)
        except Exception as error:  # a dialog, never a traceback
            self.app.report(error, "Cannot open the lab")  # type: ignore[attr-defined]
            return
        self.app.push_screen(LabScreen(row.topic, lab, autostart=start))

    def action_quiz(self) -> None:
        """The highlighted topic's quiz."""
        if self.current is not None:
            self.open_quiz(self.current)

    def action_lab(self) -> None:
        """The highlighted topic's lab."""
        if self.current is not None:
            self.open_lab(self.current)

    def action_review(self) -> None:
        """Review the questions that are due, from every topic."""
        from sdtutor.progress.store import ProgressStore
        from sdtutor.review import describe_wait, outlook
        from sdtutor.tui.quiz import QuizScreen

        try:
            with ProgressStore() as store:
                look = outlook(store, self.course)
        except Exception as error:  # a dialog, never a traceback
            self.app.report(error, "Cannot read your reviews")  # type: ignore[attr-defined]
            return
        if not look.due:
            if look.scheduled == 0:
                self.notify(
                    "Questions join the review once you have answered them in a quiz "
                    "(press z on a topic).",
                    title="Nothing to review yet",
                )
            else:
                wait = describe_wait(look.next_due) if look.next_due else "later"
                self.notify(
                    f"{look.scheduled} questions are scheduled; the next comes back {wait}.",
                    title="Nothing is due",
                )
            return
        self.app.push_screen(QuizScreen.for_review(look.due))

    def action_next(self) -> None:
        """Start the next step, as `sdtutor next` would."""
        suggestion = self.suggestion
        if suggestion.kind == "review":
            self.action_review()
        elif suggestion.row is None:
            self.notify("Everything written so far is done.", title="Well played")
        else:
            # Show where the step is, so Esc comes back to it.
            index = self.rows.index(suggestion.row) if suggestion.row in self.rows else -1
            if index >= 0:
                self.query_one("#topics", DataTable).move_cursor(row=index)
            if suggestion.kind == "lesson":
                self.open_lesson(suggestion.row)
            elif suggestion.kind == "quiz":
                self.open_quiz(suggestion.row)
            else:
                self.open_lab(suggestion.row, start=True)


__all__ = ["CourseMapScreen", "TopicTable", "describe_next", "quiz_cell"]
