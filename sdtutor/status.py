"""Where the learner stands on each topic: content written, and progress made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdtutor.content.course import Course
from sdtutor.progress.store import ProgressStore, TopicProgress
from sdtutor.topics import TOPICS, Topic


@dataclass(frozen=True)
class TopicStatus:
    """One row of the course map."""

    topic: Topic
    lesson: str  # not written | unread | started | read
    quiz_written: bool
    quiz_best: float | None
    quiz_attempts: int
    lab: str  # not written | not started | started | passed

    def to_json(self) -> dict[str, Any]:
        """The documented `list --json` shape of one topic."""
        return {
            "number": self.topic.number,
            "slug": self.topic.slug,
            "title": self.topic.title,
            "lesson": self.lesson,
            "quiz": {
                "best": self.quiz_best,
                "attempts": self.quiz_attempts,
                "written": self.quiz_written,
            },
            "lab": self.lab,
        }

    @property
    def next_step(self) -> str | None:
        """'lesson', 'quiz' or 'lab': what is left to do here, in course order."""
        if self.lesson in ("unread", "started"):
            return "lesson"
        if self.quiz_written and self.quiz_best is None:
            return "quiz"
        if self.lab in ("not started", "started"):
            return "lab"
        return None


@dataclass(frozen=True)
class NextStep:
    """What `sdtutor next` (and n on the TUI's course map) starts."""

    kind: str  # review | lesson | quiz | lab | done
    row: TopicStatus | None = None  # the topic, for a lesson, quiz or lab
    due: int = 0  # review questions due now


def choose_next(rows: list[TopicStatus], due: int) -> NextStep:
    """The learner's next step: the reviews that are due first, then the first unfinished
    lesson, quiz or lab in course order, else done. `rows` in course order (as
    `course_status` gives them); `due`: how many review questions are due."""
    if due > 0:
        return NextStep("review", None, due)
    for row in rows:
        if row.next_step:
            return NextStep(row.next_step, row, due)
    return NextStep("done", None, due)


def course_status(
    course: Course | None = None, store: ProgressStore | None = None
) -> list[TopicStatus]:
    """The status of all twenty topics, in order."""
    course = course or Course()
    own_store = store is None
    store = store or ProgressStore()
    try:
        rows = []
        contents = list(course.contents())
        recorded = store.topics([c.topic.slug for c in contents])
        for content in contents:
            progress: TopicProgress = recorded[content.topic.slug]
            rows.append(
                TopicStatus(
                    topic=content.topic,
                    lesson=progress.lesson if content.lesson_path else "not written",
                    quiz_written=content.quiz_path is not None,
                    quiz_best=progress.quiz_best,
                    quiz_attempts=progress.quiz_attempts,
                    lab=progress.lab if content.lab_path else "not written",
                )
            )
        return rows
    finally:
        if own_store:
            store.close()


__all__ = ["TOPICS", "NextStep", "TopicStatus", "choose_next", "course_status"]
