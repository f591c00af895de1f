"""The TUI, driven through textual's Pilot at 80x24, with snapshot tests of each screen.

State lives in a fresh SDTUTOR_HOME per test (the `home` fixture); the lab tests use the
external provider on the machine's PostgreSQL and stop the lab afterwards.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Markdown, Static

from sdtutor.content.course import Course
from sdtutor.content.models import LETTERS, Question
from sdtutor.progress.store import ProgressStore
from sdtutor.status import TopicStatus, choose_next
from sdtutor.topics import TOPICS, resolve
from sdtutor.tui import SdtutorApp
from sdtutor.tui.app import THEME_SETTING
from sdtutor.tui.course_map import CourseMapScreen
from sdtutor.tui.dialogs import ConfirmScreen, ErrorScreen, MessageScreen
from sdtutor.tui.help import HelpScreen
from sdtutor.tui.keybar import KeyBar
from sdtutor.tui.lab import LabScreen, hide_password
from sdtutor.tui.lesson import LessonScreen
from sdtutor.tui.quiz import QuizScreen

SIZE = (80, 24)
INDEXING_ROW = 6  # topic 7, counted from 0

# A small lesson and quiz of our own, so the snapshots do not move when the real ones
# are edited.
FIXTURE_LESSON = """\
---
format_version: 1
number: 7
slug: indexing
title: Database indexing and query optimization
summary: An index is a sorted copy of a few columns that lets the database read a few pages \
instead of the whole table.
minutes: 12
objectives:
  - Explain why a B-tree finds one row among millions in a few page reads
  - Choose the column order of a composite index
---

## Why it matters

Most slow endpoints read far more data than the answer needs. One well-chosen index turns
a **sequential scan** of every page into a handful of page reads.

- a B-tree is three or four levels deep
- each level is one page read

```sql
CREATE INDEX orders_user_created ON orders (user_id, created_at);
```

## Mental model

The table is a heap; the index is a sorted copy of a few columns with row addresses.

## Pitfalls

An index the planner cannot use costs writes and buys nothing.
"""

FIXTURE_QUIZ = """\
format_version: 1
topic: indexing
questions:
  - id: leaf-holds
    type: single
    idea: what an index entry holds
    section: Mental model
    prompt: What does a B-tree leaf entry hold?
    choices:
      - The whole row
      - The key and the row's address
      - Only the row's address
    answer: b
    explanation: |
      A leaf entry holds the key and the row's address; (a) and (c) miss half of it.
  - id: seekable
    type: multiple
    idea: leftmost prefix
    section: Mental model
    prompt: Which filters can seek in an index on (a, b)?
    choices:
      - "WHERE a = 1"
      - "WHERE b = 1"
      - "WHERE a = 1 AND b > 2"
    answer: [a, c]
    explanation: The leaves are sorted by a, then b.
  - id: rows
    type: numeric
    idea: fan-out
    section: Pitfalls
    prompt: Three levels, 100 entries per page. How many rows at most?
    answer: 1000000
    tolerance: 0
    unit: rows
    explanation: 100 x 100 x 100 = 1,000,000.
  - id: lookup
    type: order
    idea: lookup steps
    section: Mental model
    prompt: Put the steps of a lookup in order.
    choices:
      - Read the heap page
      - Read the root page
      - Read the leaf page
    answer: [b, c, a]
    explanation: Root, leaf, then heap.
  - id: hash-range
    type: truefalse
    idea: hash indexes
    section: Pitfalls
    prompt: A hash index can serve a range query.
    answer: false
    explanation: A hash index only answers equality.
"""


@pytest.fixture
def fixture_course(tmp_path: Path) -> Course:
    """A course folder holding the small indexing lesson and quiz."""
    root = tmp_path / "course"
    (root / "lessons").mkdir(parents=True)
    (root / "quizzes").mkdir()
    (root / "lessons" / "07-indexing.md").write_text(FIXTURE_LESSON, encoding="utf-8")
    (root / "quizzes" / "07-indexing.yaml").write_text(FIXTURE_QUIZ, encoding="utf-8")
    return Course(roots=[root])


def run(app: SdtutorApp, scenario: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    """Run the app headless at 80x24 and play the scenario."""

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await scenario(pilot)

    asyncio.run(main())


async def go_to(pilot: Pilot[None], row: int) -> None:
    """Move the map's cursor down to a row."""
    for _ in range(row):
        await pilot.press("down")
    await pilot.pause()


def text_of(screen: object, selector: str) -> str:
    """What a Static shows, as plain text."""
    widget = screen.query_one(selector, Static)  # type: ignore[attr-defined]
    rendered = widget.render()
    return str(getattr(rendered, "plain", rendered))


def markdown_of(screen: object, selector: str) -> str:
    """The Markdown source a Markdown widget shows."""
    return str(screen.query_one(selector, Markdown).source)  # type: ignore[attr-defined]


def fixture_question(course: Course, qid: str) -> Question:
    """A question of the fixture quiz, by id."""
    return next(q for q in course.quiz(resolve("indexing")).questions if q.id == qid)


def right_keys(screen: QuizScreen) -> list[str]:
    """The keys that answer the shown (shuffled) question right."""
    q = screen.shown
    if q.type == "single":
        return [q.answer]
    if q.type == "multiple":
        return [*sorted(q.answer), "enter"]
    if q.type == "order":
        return [*q.answer, "enter"]
    if q.type == "truefalse":
        return ["t" if q.answer else "f"]
    return [*str(int(q.answer)), "enter"]


def wrong_keys(screen: QuizScreen) -> list[str]:
    """Keys that answer the shown question wrong (but in the right form)."""
    q = screen.shown
    letters = LETTERS[: len(q.choices)]
    if q.type == "single":
        return [next(x for x in letters if x != q.answer)]
    if q.type == "multiple":
        return [next(x for x in letters if x not in q.answer), "enter"]
    if q.type == "order":
        return [*reversed(q.answer), "enter"]
    if q.type == "truefalse":
        return ["f" if q.answer else "t"]
    return ["7", "enter"]


# ---------------------------------------------------------------- course map


def test_map_lists_twenty_topics_and_the_next_step(home: Path) -> None:
    app = SdtutorApp()

    async def scenario(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, CourseMapScreen)
        table = app.screen.query_one("#topics", DataTable)
        assert table.row_count == 20
        assert str(table.get_row_at(INDEXING_ROW)[1]) == "Database indexing & query optimization"
        assert "Next: the lesson of 1. Monolith vs microservices" in text_of(app.screen, "#next")
        assert app.title == "sdtutor"

    run(app, scenario)


def test_next_skips_what_is_done_and_never_a_passed_lab(home: Path) -> None:
    course = Course()
    with ProgressStore() as store:
        for number in range(1, 8):
            topic = resolve(str(number))
            store.record_lesson(topic.slug, 5, finished=True)
            attempt = store.start_quiz(topic.slug, 1)
            store.finish_quiz(attempt)
            if course.content(topic).lab_path:
                lab = course.lab(topic)
                store.record_check(topic.slug, [c.id for c in lab.checks], [])
    app = SdtutorApp(course)

    async def scenario(pilot: Pilot[None]) -> None:
        assert "Next: the lesson of 8. Rate limiting" in text_of(app.screen, "#next")
        await go_to(pilot, INDEXING_ROW)
        steps = text_of(app.screen, "#run")
        assert "✓ Lab" in steps and "passed" in steps
        assert "▸" not in steps  # nothing left to do here
        assert "All done here" in steps
        await pilot.press("n")  # starts the real next step: lesson 8
        await pilot.pause()
        assert isinstance(app.screen, LessonScreen)
        assert app.screen.lesson.slug == "rate-limiting"

    run(app, scenario)


def test_due_reviews_come_first_and_n_opens_them(home: Path, fixture_course: Course) -> None:
    from sdtutor.review import record

    with ProgressStore() as store:
        record(store, "indexing", "hash-range", False, when=datetime.now(UTC) - timedelta(hours=1))
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        assert "Next: 1 question due for review" in text_of(app.screen, "#next")
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, QuizScreen)
        assert app.screen.quiz_topic is None
        assert "Review 1 of 1" in text_of(app.screen, "#where")
        await pilot.press("f")  # right
        await pilot.pause()
        assert "✓ Right." in str(app.screen.query_one("#feedback").border_title)
        await pilot.press("enter")  # the summary
        await pilot.pause()
        assert "Score: 1 of 1" in markdown_of(app.screen, "#prompt")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CourseMapScreen)
        assert "Next: the lesson of 7" in text_of(app.screen, "#next")

    run(app, scenario)
    with ProgressStore() as store:
        card = next(c for c in store.cards() if c["question_id"] == "hash-range")
        assert datetime.fromisoformat(card["due"]) > datetime.now(UTC)  # moved on
        answers = store.answers("indexing")
    assert [(a["question_id"], a["response"], a["correct"]) for a in answers] == [
        ("hash-range", "f", 1)
    ]


def _status(number: int, lesson: str, quiz: float | None, lab: str) -> TopicStatus:
    return TopicStatus(
        topic=TOPICS[number - 1],
        lesson=lesson,
        quiz_written=lesson != "not written",
        quiz_best=quiz,
        quiz_attempts=0 if quiz is None else 1,
        lab=lab,
    )


def test_the_next_step_rule_reviews_first_then_course_order() -> None:
    # The one rule behind `sdtutor next` and n on the map (sdtutor.status.choose_next).
    rows = [
        _status(1, "read", 0.9, "not written"),  # all done
        _status(2, "read", 0.5, "passed"),  # done: a low score is still a quiz taken
        _status(3, "not written", None, "not written"),  # nothing to do yet
        _status(4, "read", None, "not started"),  # the quiz comes before the lab
        _status(5, "unread", None, "not started"),
    ]
    step = choose_next(rows, due=0)
    assert (step.kind, step.row and step.row.topic.number) == ("quiz", 4)
    assert choose_next(rows, due=3).kind == "review"
    assert choose_next(rows, due=3).due == 3 and choose_next(rows, due=3).row is None
    rows[3] = _status(4, "read", 1.0, "started")
    assert choose_next(rows, 0).kind == "lab"
    rows[3] = _status(4, "read", 1.0, "passed")
    step = choose_next(rows, 0)
    assert (step.kind, step.row and step.row.topic.number) == ("lesson", 5)
    rows[4] = _status(5, "read", 1.0, "passed")
    assert choose_next(rows, 0).kind == "done"
    assert choose_next([], 0).kind == "done"


def test_the_key_bar_is_drawn_with_the_map_and_a_click_presses_a_key(
    home: Path, fixture_course: Course
) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        bar = app.screen.query_one(KeyBar)
        line = bar.render().plain
        for key in ("⏎ Lesson", "z Quiz", "b Lab", "n Next step", "r Review", "? Help"):
            assert key in line
        assert line.rstrip().endswith("^p palette")
        await go_to(pilot, INDEXING_ROW)
        start = line.index(" z Quiz")
        await pilot.click(KeyBar, offset=(start + 2, 0))
        await pilot.pause()
        assert isinstance(app.screen, QuizScreen)
        assert "Esc Stop" in app.screen.query_one(KeyBar).render().plain

    run(app, scenario)


def test_review_with_nothing_due_says_so(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, CourseMapScreen)
        assert any("Nothing to review yet" in (n.title or "") for n in app._notifications)

    run(app, scenario)


def test_topics_without_content_say_so(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        for key in ("enter", "z", "b"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, CourseMapScreen)
        messages = [n.message for n in app._notifications]
        assert any("lesson for monolith-vs-microservices is not written" in m for m in messages)
        assert any("quiz for monolith-vs-microservices is not written" in m for m in messages)
        assert any("lab for monolith-vs-microservices is not written" in m for m in messages)

    run(app, scenario)


def test_an_unreadable_progress_store_is_a_dialog_not_a_traceback(
    home: Path, fixture_course: Course
) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a folder")  # SDTUTOR_HOME is a file: the store cannot open
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, ErrorScreen)
        assert app.screen.message
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CourseMapScreen)

    run(app, scenario)


def test_theme_toggles_between_dark_and_light(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        assert app.theme == "textual-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-dark"

    run(app, scenario)


def test_the_chosen_theme_is_remembered(home: Path, fixture_course: Course) -> None:
    async def toggle(pilot: Pilot[None]) -> None:
        await pilot.press("ctrl+t")
        await pilot.pause()

    async def nothing(pilot: Pilot[None]) -> None:
        pass

    first = SdtutorApp(fixture_course)
    run(first, toggle)
    assert first.theme == "textual-light"
    with ProgressStore() as store:
        assert store.setting(THEME_SETTING) == "textual-light"
    second = SdtutorApp(fixture_course)
    assert second.theme == "textual-light"  # from the start, not after a first frame
    run(second, toggle)
    third = SdtutorApp(fixture_course)
    assert third.theme == "textual-dark"
    with ProgressStore() as store:
        store.set_setting(THEME_SETTING, "no-such-theme")  # say, from an older version
    fourth = SdtutorApp(fixture_course)
    run(fourth, nothing)
    assert fourth.theme == "textual-dark"


def test_help_opens_and_closes(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, CourseMapScreen)

    run(app, scenario)


def test_q_exits(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running

    run(app, scenario)
    assert app.return_code == 0


# ---------------------------------------------------------------- lessons


def test_the_lesson_moves_and_records_it_read(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LessonScreen)
        assert text_of(screen, "#where").startswith("Section 1/3")
        await pilot.press("n", "right")
        assert screen.index == 2
        await pilot.press("p", "left")
        assert screen.index == 0
        await pilot.press("n", "n", "enter")  # past the last section: back to the map
        await pilot.pause()
        assert isinstance(app.screen, CourseMapScreen)
        table = app.screen.query_one("#topics", DataTable)
        assert str(table.get_row_at(INDEXING_ROW)[2]) == "read"

    run(app, scenario)
    with ProgressStore() as store:
        assert store.topic("indexing").lesson == "read"


def test_the_reader_reopens_where_the_learner_left(home: Path) -> None:
    async def first(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LessonScreen)
        await pilot.press("n", "n")
        await pilot.pause()
        body = screen.query_one("#body")
        body.scroll_to(y=7, animate=False)
        await pilot.pause()
        assert body.scroll_y == 7
        await pilot.press("q")  # quitting saves the place too
        await pilot.pause()

    app = SdtutorApp()
    run(app, first)
    with ProgressStore() as store:
        assert store.position("indexing") == (2, 7)
        assert store.topic("indexing").lesson == "started"

    async def second(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LessonScreen)
        assert screen.index == 2
        assert text_of(screen, "#where").startswith("Section 3/")
        assert screen.query_one("#body").scroll_y == 7
        await pilot.press("p", "escape")
        await pilot.pause()

    app = SdtutorApp()
    run(app, second)
    with ProgressStore() as store:
        assert store.position("indexing") == (1, 0)


# ---------------------------------------------------------------- quiz


def test_a_whole_quiz_with_every_kind_of_question(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)
    seen_types: list[str] = []

    async def scenario(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("z")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, QuizScreen)
        for number in range(1, 6):
            assert f"Question {number} of 5" in text_of(screen, "#where")
            seen_types.append(screen.shown.type)
            keys = right_keys(screen) if number != 3 else wrong_keys(screen)
            await pilot.press(*keys)
            await pilot.pause()
            assert screen.graded is not None, keys
            # Recorded as given: the store has it before the next question.
            with ProgressStore() as store:
                assert len(store.answers("indexing")) == number
            box = screen.query_one("#feedback")
            assert box.display
            if number == 3:
                assert str(box.border_title) == "✗ Not quite."
                assert "The answer:" in markdown_of(screen, "#explanation")
            else:
                assert str(box.border_title) == "✓ Right."
            await pilot.press("enter")
            await pilot.pause()
        assert "Score: 4 of 5 (80%)" in markdown_of(screen, "#prompt")
        assert "Re-read in the indexing lesson" in markdown_of(screen, "#prompt")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CourseMapScreen)
        table = app.screen.query_one("#topics", DataTable)
        assert str(table.get_row_at(INDEXING_ROW)[3]) == "best 80%"

    run(app, scenario)
    assert sorted(seen_types) == sorted(["single", "multiple", "numeric", "order", "truefalse"])
    with ProgressStore() as store:
        assert store.topic("indexing").quiz_best == 0.8
        answers = store.answers("indexing")
        assert len(store.cards()) == 5
    # Every response is recorded in the quiz file's own letters, whatever was shown.
    by_id = {a["question_id"]: a for a in answers}
    assert by_id["leaf-holds"]["response"] in ("b",) or not by_id["leaf-holds"]["correct"]
    assert by_id["lookup"]["correct"] == 0 or by_id["lookup"]["response"] == "bca"


def test_quitting_mid_quiz_keeps_the_answers(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("z")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, QuizScreen)
        await pilot.press(*right_keys(screen))
        await pilot.press("enter")
        await pilot.press(*right_keys(screen))
        await pilot.pause()
        app.exit()  # the terminal closes mid-quiz

    run(app, scenario)
    with ProgressStore() as store:
        assert len(store.answers("indexing")) == 2
        assert len(store.cards()) == 2
        assert store.topic("indexing").quiz_best is None  # the attempt is not finished


def test_malformed_answers_are_explained_not_graded(home: Path, fixture_course: Course) -> None:
    app = SdtutorApp(fixture_course)

    async def scenario(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("z")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, QuizScreen)
        while screen.shown.type != "order":
            await pilot.press(*right_keys(screen), "enter")
            await pilot.pause()
        await pilot.press("a", "enter")  # one letter of three
        await pilot.pause()
        assert screen.graded is None
        assert "Put all 3 letters in order" in text_of(screen, "#answer")
        await pilot.press("backspace", *right_keys(screen))
        await pilot.pause()
        assert screen.graded is not None and screen.graded.correct
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CourseMapScreen)

    run(app, scenario)


def test_shuffled_answers_are_recorded_and_explained_in_the_shown_letters(
    fixture_course: Course,
) -> None:
    from sdtutor.grading import original_letters, relettered, shuffled

    original = fixture_question(fixture_course, "leaf-holds")
    for seed in range(20):
        shown = shuffled(original, seed)
        assert original_letters(original, shown, shown.answer) == "b"
        explained = relettered(original.explanation, original, shown)
        wrong = [LETTERS[shown.choices.index(original.choices[i])] for i in (0, 2)]
        assert f"({wrong[0]}) and ({wrong[1]})" in explained


# ---------------------------------------------------------------- lab


@pytest.fixture
def external_lab(
    home: Path, system_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The external provider on the machine's PostgreSQL; the lab is stopped afterwards."""
    monkeypatch.setenv("SDTUTOR_PROVIDER", "external")
    monkeypatch.setenv("SDTUTOR_POSTGRES_URL", system_postgres)
    yield home
    from sdtutor.lab import runtime

    topic = resolve("indexing")
    runtime.stop(topic, Course().lab(topic), purge=True)


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], seconds: float = 60) -> None:
    """Let the app run until the condition holds (workers finish in their own threads)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.1)


def test_the_lab_screen_runs_a_lab(external_lab: Path) -> None:
    app = SdtutorApp()

    async def scenario(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("b")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LabScreen)
        await wait_for(pilot, lambda: screen.status != "unknown")
        assert screen.status == "not started"
        assert "press s to start it" in text_of(screen, "#bar")
        assert "Lab 7" in markdown_of(screen, "#readme")

        await pilot.press("c")  # not yet
        await pilot.press("s")
        await pilot.pause()
        assert screen.busy == "start"  # the screen still answers while it starts
        await wait_for(pilot, lambda: screen.busy is None and screen.status == "running")
        await pilot.press("2")
        await pilot.pause()
        url = screen.info["services"]["postgres"]["url"]
        assert screen.states == {"postgres": True}
        assert "•••" in hide_password(url) and hide_password(url) != url

        await pilot.press("c")
        await pilot.pause()
        assert screen.busy == "check"
        await wait_for(pilot, lambda: screen.busy is None and screen.results is not None)
        results = screen.results or []
        assert len(results) == 5
        assert not all(r.passed for r in results)  # the untouched starter fails
        assert "checks pass" in text_of(screen, "#bar")
        latest = next(r for r in results if r.id == "latest-orders")
        assert not latest.passed and any(e.kind == "plan" for e in latest.evidence)

        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        assert app.screen.title_text == "Hint 1 of 5"
        await pilot.press("enter")

        # Watch: an edit to a workspace file is checked again.
        workspace = Path(screen.info["workspace"])
        await pilot.press("w")
        await wait_for(pilot, lambda: screen.watching and screen.checked_at != "")
        results_before = screen.results
        with (workspace / "queries.sql").open("a") as edit:
            edit.write("\n-- an edit\n")
        await wait_for(pilot, lambda: screen.results is not results_before and not screen.busy)
        assert screen.watching
        await pilot.press("w")
        await pilot.pause()
        assert not screen.watching

        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        await wait_for(pilot, lambda: screen.busy is None and screen.status == "running")
        assert (workspace / ".sdtutor-backup").is_dir()

        await pilot.press("x")
        await wait_for(pilot, lambda: screen.busy is None and screen.status == "not started")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, CourseMapScreen)

    run(app, scenario)


def test_a_lab_that_cannot_start_says_what_to_do(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDTUTOR_PROVIDER", "external")  # and no SDTUTOR_POSTGRES_URL
    monkeypatch.delenv("SDTUTOR_POSTGRES_URL", raising=False)
    app = SdtutorApp()

    async def scenario(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, LabScreen)
        await wait_for(pilot, lambda: screen.status != "unknown")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        dialog = app.screen
        assert isinstance(dialog, ErrorScreen)
        assert "SDTUTOR_POSTGRES_URL" in dialog.message + dialog.hint
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and screen.status == "not started"

    run(app, scenario)


def test_the_solution_key_comes_once_the_lab_has_passed(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDTUTOR_PROVIDER", "external")  # the lab is not started here
    monkeypatch.delenv("SDTUTOR_POSTGRES_URL", raising=False)
    topic = resolve("indexing")
    lab = Course().lab(topic)
    app = SdtutorApp()

    async def scenario(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, LabScreen)
        await wait_for(pilot, lambda: screen.status != "unknown")
        assert "Solution" not in screen.query_one(KeyBar).render().plain
        await pilot.press("v")  # not passed: nothing opens
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")
        await pilot.pause()
        with ProgressStore() as store:  # passed (in another terminal, say)
            store.record_check(topic.slug, [c.id for c in lab.checks], [])
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, LabScreen)
        await wait_for(pilot, lambda: screen.passed)
        await pilot.pause()
        assert "v Solution" in screen.query_one(KeyBar).render().plain
        await pilot.press("v")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, MessageScreen)
        assert dialog.title_text.startswith("Reference solution")
        for name, text in runtime_solution(topic, lab):
            assert f"**{name}**" in dialog.text
            assert text.strip().splitlines()[0] in dialog.text
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen

    run(app, scenario)


def runtime_solution(topic: object, lab: object) -> list[tuple[str, str]]:
    """The reference solution's files, as `sdtutor lab solution` gives them."""
    from sdtutor.lab import runtime

    return runtime.solution_files(topic, lab)  # type: ignore[arg-type]


# ---------------------------------------------------------------- snapshots


def test_snapshot_course_map(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    with ProgressStore() as store:
        store.record_lesson("indexing", 1, finished=False)
    assert snap_compare(
        SdtutorApp(fixture_course), terminal_size=SIZE, press=["down"] * INDEXING_ROW
    )


def test_snapshot_course_map_light(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        SdtutorApp(fixture_course),
        terminal_size=SIZE,
        press=["down"] * INDEXING_ROW + ["ctrl+t"],
    )


def test_snapshot_lesson(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        SdtutorApp(fixture_course), terminal_size=SIZE, press=["down"] * INDEXING_ROW + ["enter"]
    )


def test_snapshot_help(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(SdtutorApp(fixture_course), terminal_size=SIZE, press=["question_mark"])


async def _open_quiz(pilot: Pilot[None]) -> None:
    await go_to(pilot, INDEXING_ROW)
    await pilot.press("z")
    await pilot.pause()


def test_snapshot_quiz_question(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    # A fresh home: the first attempt's id is 1, so the shuffle is the same each run.
    assert snap_compare(SdtutorApp(fixture_course), terminal_size=SIZE, run_before=_open_quiz)


def test_snapshot_quiz_explanation(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    async def answer_wrong(pilot: Pilot[None]) -> None:
        await _open_quiz(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, QuizScreen)
        await pilot.press(*wrong_keys(screen))
        await pilot.pause()

    assert snap_compare(SdtutorApp(fixture_course), terminal_size=SIZE, run_before=answer_wrong)


def test_snapshot_quiz_summary(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    async def answer_all(pilot: Pilot[None]) -> None:
        await _open_quiz(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, QuizScreen)
        for i in range(5):
            await pilot.press(*(wrong_keys(screen) if i in (1, 3) else right_keys(screen)))
            await pilot.press("enter")
            await pilot.pause()

    assert snap_compare(SdtutorApp(fixture_course), terminal_size=SIZE, run_before=answer_all)


def test_snapshot_review(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    from sdtutor.review import outlook, record

    with ProgressStore() as store:
        record(store, "indexing", "seekable", False, when=datetime.now(UTC) - timedelta(hours=1))

    async def open_review(pilot: Pilot[None]) -> None:
        with ProgressStore() as store:
            due = outlook(store, fixture_course).due
        await pilot.app.push_screen(QuizScreen.for_review(due, seed="snapshot"))
        await pilot.pause()
        await pilot.press("a")

    assert snap_compare(SdtutorApp(fixture_course), terminal_size=SIZE, run_before=open_review)


def test_snapshot_error_dialog(snap_compare, home: Path, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    from sdtutor.errors import LabError

    async def show_error(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, SdtutorApp)
        app.report(
            LabError("The indexing lab is not running.", "Start it with s on the lab screen."),
            "The checks could not run",
        )
        await pilot.pause()

    assert snap_compare(SdtutorApp(fixture_course), terminal_size=SIZE, run_before=show_error)


def test_snapshot_lab_not_started(snap_compare, home: Path) -> None:  # type: ignore[no-untyped-def]
    async def open_lab(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("b")
        screen = pilot.app.screen
        assert isinstance(screen, LabScreen)
        await wait_for(pilot, lambda: screen.status != "unknown")
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(SdtutorApp(), terminal_size=SIZE, run_before=open_lab)


def test_snapshot_lab_checked(snap_compare, external_lab: Path) -> None:  # type: ignore[no-untyped-def]
    from sdtutor.services.names import Names

    async def start_and_check(pilot: Pilot[None]) -> None:
        await go_to(pilot, INDEXING_ROW)
        await pilot.press("b")
        screen = pilot.app.screen
        assert isinstance(screen, LabScreen)
        await wait_for(pilot, lambda: screen.status != "unknown")
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.busy is None and screen.status == "running")
        await pilot.press("c")
        await wait_for(pilot, lambda: screen.busy is None and screen.results is not None)
        # The home id and the time differ on every run: masked, like a password.
        screen.masks = [(Names.for_lab("indexing").home, "HOMEID")]
        screen.checked_at = "12:00:00"
        screen.draw()
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(SdtutorApp(), terminal_size=SIZE, run_before=start_and_check)


# ---------------------------------------------------------------- import hygiene


def test_the_core_never_imports_textual() -> None:
    code = (
        "import sdtutor.status, sdtutor.content.loader, sdtutor.lab.runtime, "
        "sdtutor.progress.store, sdtutor.grading, sdtutor.review, sdtutor.evidence_view; "
        "import sys; "
        "assert 'textual' not in sys.modules, 'the core imported textual'; "
        "assert 'typer' not in sys.modules, 'the core imported typer'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
