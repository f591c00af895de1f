"""The TUI, driven through textual's Pilot, with snapshot tests of each screen."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from sdtutor.content.course import Course
from sdtutor.progress.store import ProgressStore
from sdtutor.status import TopicStatus
from sdtutor.topics import TOPICS
from sdtutor.tui import SdtutorApp
from sdtutor.tui.course_map import CourseMapScreen
from sdtutor.tui.help import HelpScreen
from sdtutor.tui.lesson import LessonScreen

SIZE = (100, 32)
INDEXING_ROW = 6  # topic 7, counted from 0

# A small lesson of our own, so the snapshots do not move when the real one is edited.
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
  - Read EXPLAIN (ANALYZE, BUFFERS) output
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


def fixed_status() -> list[TopicStatus]:
    """Progress that does not depend on the machine: only topic 7 has content."""
    rows = []
    for topic in TOPICS:
        if topic.slug == "indexing":
            rows.append(TopicStatus(topic, "read", True, 0.75, 2, "started"))
        else:
            rows.append(TopicStatus(topic, "not written", False, None, 0, "not written"))
    return rows


@pytest.fixture
def fixture_course(tmp_path: Path) -> Course:
    """A course folder holding just the small indexing lesson."""
    lessons = tmp_path / "course" / "lessons"
    lessons.mkdir(parents=True)
    (lessons / "07-indexing.md").write_text(FIXTURE_LESSON, encoding="utf-8")
    return Course(roots=[tmp_path / "course"])


def fixed_app(course: Course, recorded: list[tuple[str, int, bool]] | None = None) -> SdtutorApp:
    """The app on the fixture course, with fixed progress and a recorder that only remembers."""
    calls = recorded if recorded is not None else []
    return SdtutorApp(
        course=course,
        status=fixed_status,
        recorder=lambda slug, sections, finished: calls.append((slug, sections, finished)),
    )


async def open_indexing(pilot: Pilot[None]) -> None:
    """Move down to topic 7 and press Enter."""
    for _ in range(INDEXING_ROW):
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()


# ---------------------------------------------------------------- behaviour


def test_map_lists_twenty_topics(home: Path) -> None:
    async def scenario() -> None:
        app = SdtutorApp()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, CourseMapScreen)
            table = app.screen.query_one("#topics", DataTable)
            assert table.row_count == 20
            assert (
                str(table.get_row_at(INDEXING_ROW)[1]) == "Database indexing & query optimization"
            )
            assert app.title == "sdtutor"

    asyncio.run(scenario())


def test_detail_panel_follows_the_cursor(home: Path, fixture_course: Course) -> None:
    async def scenario() -> None:
        app = SdtutorApp(course=fixture_course)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(INDEXING_ROW):
                await pilot.press("down")
            await pilot.pause()
            run = str(app.screen.query_one("#run", Static).render())
            assert "sdtutor learn indexing" in run
            about = str(app.screen.query_one("#about-text", Static).render())
            assert "You will be able to:" in about
            await pilot.press("up")
            about = str(app.screen.query_one("#about-text", Static).render())
            assert "not written yet" in about

    asyncio.run(scenario())


def test_enter_on_indexing_opens_the_lesson_and_n_moves_on(home: Path) -> None:
    async def scenario() -> None:
        app = SdtutorApp()
        async with app.run_test(size=SIZE) as pilot:
            await open_indexing(pilot)
            screen = app.screen
            assert isinstance(screen, LessonScreen)
            assert screen.lesson.slug == "indexing"
            assert screen.index == 0
            assert str(screen.query_one("#where", Static).render()).startswith("Section 1/")
            await pilot.press("n")
            assert screen.index == 1
            assert str(screen.query_one("#where", Static).render()).startswith("Section 2/")
            await pilot.press("right")
            assert screen.index == 2
            await pilot.press("p")
            await pilot.press("left")
            assert screen.index == 0
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, CourseMapScreen)

    asyncio.run(scenario())


def test_enter_on_a_topic_without_a_lesson_stays_on_the_map(
    home: Path, fixture_course: Course
) -> None:
    async def scenario() -> None:
        app = SdtutorApp(course=fixture_course)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, CourseMapScreen)

    asyncio.run(scenario())


def test_reaching_the_end_records_the_lesson_read(home: Path) -> None:
    async def scenario() -> None:
        app = SdtutorApp()
        async with app.run_test(size=SIZE) as pilot:
            await open_indexing(pilot)
            screen = app.screen
            assert isinstance(screen, LessonScreen)
            for _ in range(screen.total - 1):
                await pilot.press("n")
            assert screen.index == screen.total - 1
            await pilot.press("escape")
            await pilot.pause()
            # Back on the map, the table shows the new progress.
            table = app.screen.query_one("#topics", DataTable)
            assert str(table.get_row_at(INDEXING_ROW)[2]) == "read"

    asyncio.run(scenario())
    with ProgressStore() as store:
        assert store.topic("indexing").lesson == "read"


def test_the_recorder_is_called_once_at_the_end(fixture_course: Course) -> None:
    calls: list[tuple[str, int, bool]] = []
    app = fixed_app(fixture_course, calls)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await open_indexing(pilot)
            await pilot.press("n", "n")
            await pilot.press("p", "n")
            assert calls == [("indexing", 3, True)]
            await pilot.press("enter")  # past the last section: back to the map
            await pilot.pause()
            assert isinstance(app.screen, CourseMapScreen)

    asyncio.run(scenario())
    assert calls == [("indexing", 3, True)]


def test_leaving_early_records_the_lesson_started(fixture_course: Course) -> None:
    calls: list[tuple[str, int, bool]] = []
    app = fixed_app(fixture_course, calls)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await open_indexing(pilot)
            await pilot.press("n", "escape")
            await pilot.pause()

    asyncio.run(scenario())
    assert calls == [("indexing", 2, False)]


def test_help_opens_and_closes(fixture_course: Course) -> None:
    async def scenario() -> None:
        app = fixed_app(fixture_course)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, CourseMapScreen)

    asyncio.run(scenario())


def test_q_exits(fixture_course: Course) -> None:
    app = fixed_app(fixture_course)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("q")
            await pilot.pause()
            assert not app.is_running

    asyncio.run(scenario())
    assert app.return_code == 0


# ---------------------------------------------------------------- snapshots


def test_snapshot_course_map(snap_compare, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        fixed_app(fixture_course), terminal_size=SIZE, press=["down"] * INDEXING_ROW
    )


def test_snapshot_lesson(snap_compare, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(fixed_app(fixture_course), terminal_size=SIZE, run_before=open_indexing)


def test_snapshot_help(snap_compare, fixture_course: Course) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(fixed_app(fixture_course), terminal_size=SIZE, press=["question_mark"])


# ---------------------------------------------------------------- import hygiene


def test_the_core_never_imports_textual() -> None:
    code = (
        "import sdtutor.status, sdtutor.content.loader, sdtutor.lab.runtime, "
        "sdtutor.progress.store, sdtutor.grading; import sys; "
        "assert 'textual' not in sys.modules, 'the core imported textual'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
