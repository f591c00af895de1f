"""The textual app: opens the course map; everything it shows comes from the core."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from sdtutor.content.course import Course
from sdtutor.tui.course_map import CourseMapScreen

if TYPE_CHECKING:
    from textual.theme import Theme

DARK, LIGHT = "textual-dark", "textual-light"
THEME_SETTING = "tui.theme"  # the theme chosen last (Ctrl+T or the command palette)


class SdtutorApp(App[None]):
    """The course map, and from it lessons, quizzes, reviews and labs."""

    TITLE = "sdtutor"
    SUB_TITLE = "backend system design in 20 topics"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", key_display="^t", show=False),
    ]

    def __init__(self, course: Course | None = None) -> None:
        super().__init__()
        self.course = course or Course()
        # Before the first frame: a theme set later would restyle every widget again.
        saved = self._saved_theme()
        if saved is not None:
            self.theme = saved

    def _saved_theme(self) -> str | None:
        """The theme the learner chose last time, if it still exists."""
        from sdtutor.progress.store import ProgressStore

        try:
            with ProgressStore() as store:
                name = store.setting(THEME_SETTING)
        except Exception:  # the course map says what is wrong with the store
            return None
        return name if name in self.available_themes else None

    def on_mount(self) -> None:
        """Remember each theme the learner picks."""
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, theme: Theme) -> None:
        from sdtutor.progress.store import ProgressStore

        try:
            with ProgressStore() as store:
                if store.setting(THEME_SETTING) != theme.name:
                    store.set_setting(THEME_SETTING, theme.name)
        except Exception as error:  # the theme still changes; it is just not kept
            self.notify(f"The theme will not be remembered: {error}", severity="warning")

    def get_default_screen(self) -> CourseMapScreen:
        """The course map is the bottom screen (not one pushed over an empty one: that
        would style and lay out two screens before the first paint)."""
        return CourseMapScreen(self.course)

    def report(self, error: BaseException, title: str = "That did not work") -> None:
        """Show an error as a dialog that says what to do (never a traceback)."""
        from sdtutor.tui.dialogs import ErrorScreen

        self.push_screen(ErrorScreen(error, title))

    def action_help(self) -> None:
        """Show the keys, or close them if they are showing."""
        from sdtutor.tui.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        """Switch between the dark and the light theme."""
        self.theme = LIGHT if self.theme == DARK else DARK

    async def action_quit(self) -> None:
        """Quit, saving where the learner is in an open lesson (answers are saved as given)."""
        from sdtutor.tui.lesson import LessonScreen

        for screen in self.screen_stack:
            if isinstance(screen, LessonScreen):
                screen.save_progress()
        self.exit()


__all__ = ["DARK", "LIGHT", "THEME_SETTING", "SdtutorApp"]
