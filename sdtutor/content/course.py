"""Where a course's files are: the built-in course and an author's (SDTUTOR_COURSE).

Only looks at the file system; parsing is the loader's job, imported when a file is
actually read, so that listing the course stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from sdtutor import locations
from sdtutor.errors import ContentError
from sdtutor.topics import TOPICS, Topic

if TYPE_CHECKING:
    from sdtutor.content.models import LabSpec, Lesson, Quiz


class TopicContent(NamedTuple):
    """Where a topic's files are, in the first course folder that has them."""

    topic: Topic
    lesson_path: Path | None
    quiz_path: Path | None
    lab_path: Path | None


class Course:
    """The course folders (built-in, plus SDTUTOR_COURSE), and lazy access to their files."""

    def __init__(self, roots: list[Path] | None = None) -> None:
        if roots is None:
            roots = [locations.course_dir()]
            extra = locations.extra_course_dir()
            if extra:
                roots.insert(0, extra)
        self.roots = roots
        self._listings: dict[Path, frozenset[str]] = {}

    def _find(self, sub: str, name: str) -> Path | None:
        for root in self.roots:
            if name in self._names(root / sub):
                return root / sub / name
        return None

    def _names(self, folder: Path) -> frozenset[str]:
        """The entries of a course folder, listed once (one listdir, not a stat per file)."""
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                self._listings[folder] = frozenset()
        return self._listings[folder]

    def content(self, topic: Topic) -> TopicContent:
        """Locate a topic's lesson, quiz and lab without parsing them."""
        lab = self._find("labs", topic.dirname)
        return TopicContent(
            topic,
            self._find("lessons", f"{topic.dirname}.md"),
            self._find("quizzes", f"{topic.dirname}.yaml"),
            lab if lab and "lab.yaml" in self._names(lab) else None,
        )

    def contents(self) -> Iterator[TopicContent]:
        """Every topic, in order."""
        for topic in TOPICS:
            yield self.content(topic)

    def _written(self, topic: Topic, kind: str, path: Path | None) -> Path:
        if path is None:
            raise ContentError(
                f"The {kind} for '{topic.slug}' is not written yet.",
                "`sdtutor list` shows which topics have content.",
            )
        return path

    def lesson(self, topic: Topic) -> Lesson:
        """Load a topic's lesson, or say it is not written yet."""
        from sdtutor.content.loader import load_lesson

        return load_lesson(self._written(topic, "lesson", self.content(topic).lesson_path))

    def quiz(self, topic: Topic) -> Quiz:
        """Load a topic's quiz, or say it is not written yet."""
        from sdtutor.content.loader import load_quiz

        return load_quiz(self._written(topic, "quiz", self.content(topic).quiz_path))

    def lab(self, topic: Topic) -> LabSpec:
        """Load a topic's lab, or say it is not written yet."""
        from sdtutor.content.loader import load_lab

        return load_lab(self._written(topic, "lab", self.content(topic).lab_path))


__all__ = ["Course", "TopicContent"]
