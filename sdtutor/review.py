"""Spaced review: every answered question becomes a card scheduled with FSRS.

A right answer pushes the question's next showing out (days, then weeks); a wrong one
brings it back within minutes. Quiz answers and review answers both count. Headless:
the CLI and the TUI use it alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sdtutor.content.course import Course
from sdtutor.content.models import Question
from sdtutor.errors import ContentError
from sdtutor.progress.store import ProgressStore
from sdtutor.topics import TOPICS, Topic

# Missed questions come back after 1 and 10 minutes while they are being learned, then
# FSRS spaces them out aiming at 90% recall. No fuzz: a learner (and a test) can predict
# when a question returns.
LEARNING_STEPS = (timedelta(minutes=1), timedelta(minutes=10))
DESIRED_RETENTION = 0.9


def _scheduler() -> Any:
    import fsrs  # ~35 ms: only for commands that record answers or review

    return fsrs.Scheduler(
        desired_retention=DESIRED_RETENTION,
        learning_steps=LEARNING_STEPS,
        relearning_steps=(timedelta(minutes=10),),
        enable_fuzzing=False,
    )


def record(
    store: ProgressStore, topic: str, question_id: str, correct: bool, when: datetime | None = None
) -> datetime:
    """Schedule a question after an answer; returns when it is next due."""
    import fsrs

    when = when or datetime.now(UTC)
    saved = store.card(topic, question_id)
    card = fsrs.Card.from_json(saved) if saved else fsrs.Card()
    rating = fsrs.Rating.Good if correct else fsrs.Rating.Again
    card, _log = _scheduler().review_card(card, rating, review_datetime=when)
    store.save_card(topic, question_id, card.to_json(), card.due.isoformat(), lapsed=not correct)
    due: datetime = card.due
    return due


@dataclass(frozen=True)
class DueQuestion:
    """A question whose card is due."""

    topic: Topic
    question: Question
    due: datetime
    reviews: int
    lapses: int

    def to_json(self) -> dict[str, Any]:
        """The `review --json` shape of one due question."""
        return {
            "topic": self.topic.slug,
            "question": self.question.id,
            "type": self.question.type,
            "idea": self.question.idea,
            "prompt": self.question.prompt,
            "due": self.due.isoformat(),
            "reviews": self.reviews,
            "lapses": self.lapses,
        }


@dataclass(frozen=True)
class Outlook:
    """How many questions are due now, and when the next one is."""

    due: list[DueQuestion]
    scheduled: int
    next_due: datetime | None


def outlook(
    store: ProgressStore, course: Course | None = None, now: datetime | None = None
) -> Outlook:
    """The questions due for review now (most overdue first) across every topic.

    Cards of questions that no longer exist in the course are skipped.
    """
    course = course or Course()
    now = now or datetime.now(UTC)
    by_slug = {t.slug: t for t in TOPICS}
    questions: dict[str, dict[str, Question]] = {}
    due: list[DueQuestion] = []
    scheduled = 0
    next_due: datetime | None = None
    for row in store.cards():
        topic = by_slug.get(row["topic"])
        if topic is None:
            continue
        if topic.slug not in questions:
            try:
                quiz = course.quiz(topic)
                questions[topic.slug] = {q.id: q for q in quiz.questions}
            except ContentError:
                questions[topic.slug] = {}
        question = questions[topic.slug].get(row["question_id"])
        if question is None:
            continue
        when = datetime.fromisoformat(row["due"])
        scheduled += 1
        if when <= now:
            due.append(DueQuestion(topic, question, when, row["reviews"], row["lapses"]))
        elif next_due is None or when < next_due:
            next_due = when
    due.sort(key=lambda d: d.due)
    return Outlook(due, scheduled, next_due)


def describe_wait(when: datetime, now: datetime | None = None) -> str:
    """'in 10 minutes', 'in 3 days': how long until a time."""
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = round(seconds / size)
            return f"in {n} {unit}{'s' if n != 1 else ''}"
    return "in under a minute"


__all__ = ["DueQuestion", "Outlook", "describe_wait", "outlook", "record"]
