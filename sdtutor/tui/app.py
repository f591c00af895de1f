"""The textual app: opens the course map; everything it shows comes from the core."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from sdtutor.content.course import Course
from sdtutor.status import TopicStatus, course_status
from sdtutor.tui.course_map import CourseMapScreen
from sdtutor.tui.help import HelpScreen
from sdtutor.tui.lesson import LessonRecorder, LessonScreen

StatusSource = Callable[[], list[TopicStatus]]


def record_lesson(slug: str, sections: int, finished: bool) -> None:
    """Write a lesson read to the progress store (the default LessonRecorder)."""
    from sdtutor.progress.store import ProgressStore

    with ProgressStore() as store:
        store.record_lesson(slug, sections, finished=finished)


class SdtutorApp(App[None]):
    """The course map, lessons and help; tests inject a fixed course, status and recorder."""

    TITLE = "sdtutor"
    SUB_TITLE = "backend system design in 20 topics"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(
        self,
        course: Course | None = None,
        status: StatusSource | None = None,
        recorder: LessonRecorder | None = None,
    ) -> None:
        super().__init__()
        self.course = course or Course()
        self.status_source: StatusSource = status or (lambda: course_status(self.course))
        self.recorder: LessonRecorder = recorder or record_lesson

    def on_mount(self) -> None:
        """Open the course map."""
        self.push_screen(CourseMapScreen(self.course, self.status_source, self.recorder))

    def action_help(self) -> None:
        """Show the keys and commands, or close them if they are showing."""
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Quit, saving how far into an open lesson the learner got."""
        for screen in self.screen_stack:
            if isinstance(screen, LessonScreen):
                screen.save_progress()
        self.exit()


__all__ = ["SdtutorApp", "StatusSource", "record_lesson"]
