"""Spaced review: the FSRS schedule, what is due, and `sdtutor review` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdtutor.content.course import Course
from sdtutor.progress.store import ProgressStore
from sdtutor.review import describe_wait, outlook, record
from sdtutor.topics import resolve
from tests.conftest import sdtutor

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(home: Path) -> ProgressStore:
    return ProgressStore()


def test_a_missed_question_comes_back_within_minutes(store: ProgressStore) -> None:
    due = record(store, "indexing", "composite-seek", correct=False, when=T0)
    assert timedelta(0) < due - T0 <= timedelta(minutes=10)


def test_a_known_question_comes_back_days_later(store: ProgressStore) -> None:
    first = record(store, "indexing", "composite-seek", correct=True, when=T0)
    second = record(store, "indexing", "composite-seek", correct=True, when=first)
    assert second - first >= timedelta(days=1)
    third = record(store, "indexing", "composite-seek", correct=True, when=second)
    assert third - second > second - first, "each success should space it out further"


def test_forgetting_a_known_question_brings_it_back_soon(store: ProgressStore) -> None:
    when = T0
    for _ in range(3):
        when = record(store, "indexing", "composite-seek", correct=True, when=when)
    lapse = record(store, "indexing", "composite-seek", correct=False, when=when)
    assert lapse - when <= timedelta(minutes=10)
    card = store.cards()[0]
    assert card["reviews"] == 4 and card["lapses"] == 1


def test_outlook_lists_due_questions_across_topics(store: ProgressStore) -> None:
    quiz = Course().quiz(resolve("indexing"))
    missed, known = quiz.questions[0].id, quiz.questions[1].id
    record(store, "indexing", missed, correct=False, when=T0)
    record(store, "indexing", known, correct=True, when=T0)
    record(store, "indexing", known, correct=True, when=T0 + timedelta(minutes=10))
    record(store, "indexing", "a-question-that-was-removed", correct=False, when=T0)
    look = outlook(store, now=T0 + timedelta(hours=1))
    assert [d.question.id for d in look.due] == [missed]
    assert look.scheduled == 2  # the removed question is not counted
    assert look.next_due is not None and look.next_due > T0 + timedelta(days=1)
    later = outlook(store, now=T0 + timedelta(days=60))
    assert {d.question.id for d in later.due} == {missed, known}


def test_describe_wait() -> None:
    assert describe_wait(T0 + timedelta(minutes=10), now=T0) == "in 10 minutes"
    assert describe_wait(T0 + timedelta(days=3, hours=2), now=T0) == "in 3 days"
    assert describe_wait(T0 + timedelta(seconds=20), now=T0) == "in under a minute"


def _right_answer(q) -> str:  # type: ignore[no-untyped-def]
    if q.type == "single":
        return str(q.answer)
    if q.type == "multiple":
        return "".join(sorted(q.answer))
    if q.type == "order":
        return "".join(q.answer)
    if q.type == "truefalse":
        return "t" if q.answer else "f"
    return f"{q.answer:g}"


def test_review_command_asks_due_questions_and_reschedules_them(home: Path) -> None:
    quiz = Course().quiz(resolve("indexing"))
    questions = quiz.questions[:3]
    long_ago = datetime.now(UTC) - timedelta(days=30)
    with ProgressStore() as store:
        for q in questions:
            record(store, "indexing", q.id, correct=False, when=long_ago)

    listed = sdtutor("review", "--json", env={"SDTUTOR_HOME": str(home)})
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["due"] == 3 and data["scheduled"] == 3
    assert {q["question"] for q in data["questions"]} == {q.id for q in questions}
    assert all(q["topic"] == "indexing" and q["prompt"] for q in data["questions"])

    # Without a terminal, answers come one per line; the first is wrong, the rest right.
    by_id = {q.id: q for q in questions}
    order = [q["question"] for q in data["questions"]]
    answers = ["zzz-not-an-answer"] + [_right_answer(by_id[i]) for i in order[1:]]
    result = subprocess.run(
        [sys.executable, "-m", "sdtutor", "review"],
        input="\n".join(answers) + "\n",
        capture_output=True,
        text=True,
        env={"SDTUTOR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "100", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 questions due for review" in result.stdout
    assert "Score: 2 of 3" in result.stdout

    after = json.loads(sdtutor("review", "--json", env={"SDTUTOR_HOME": str(home)}).stdout)
    assert after["due"] == 0  # the missed one is back in minutes, not now
    with ProgressStore() as store:
        cards = {c["question_id"]: c for c in store.cards()}
        answers_logged = store.answers("indexing")
    now = datetime.now(UTC)
    assert datetime.fromisoformat(cards[order[0]]["due"]) - now <= timedelta(minutes=11)
    for qid in order[1:]:
        assert datetime.fromisoformat(cards[qid]["due"]) - now >= timedelta(minutes=9)
    assert len(answers_logged) == 3


def test_a_quiz_puts_its_questions_into_review(home: Path) -> None:
    quiz = Course().quiz(resolve("indexing"))
    answers = "\n".join(_right_answer(q) for q in quiz.questions) + "\n"
    subprocess.run(
        [sys.executable, "-m", "sdtutor", "quiz", "indexing"],
        input=answers,
        capture_output=True,
        text=True,
        env={"SDTUTOR_HOME": str(home), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    data = json.loads(sdtutor("review", "--json", env={"SDTUTOR_HOME": str(home)}).stdout)
    assert data["scheduled"] == len(quiz.questions) and data["due"] == 0


def test_next_sends_the_learner_to_due_reviews_first(home: Path) -> None:
    env = {"SDTUTOR_HOME": str(home)}
    first = sdtutor("next", env=env)
    assert "sdtutor learn" in first.stdout  # nothing due: the first unread lesson
    with ProgressStore() as store:
        q = Course().quiz(resolve("indexing")).questions[0]
        record(store, "indexing", q.id, correct=False, when=datetime.now(UTC) - timedelta(days=1))
    second = sdtutor("next", env=env)
    assert "sdtutor review" in second.stdout


def test_review_with_nothing_scheduled_says_how_to_start(home: Path) -> None:
    result = sdtutor("review", env={"SDTUTOR_HOME": str(home)})
    assert result.returncode == 0 and "quiz" in result.stdout
