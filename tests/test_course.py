"""The real course: every written lesson renders cleanly at 80 and 120 columns, and
every written quiz meets the course standards the linter enforces."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from sdtutor.cli import render
from sdtutor.content.course import Course
from sdtutor.content.lint import lint_quiz
from sdtutor.topics import TOPICS

COURSE = Course()
LESSONS = [t for t in TOPICS if COURSE.content(t).lesson_path]
QUIZZES = [t for t in TOPICS if COURSE.content(t).quiz_path]


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("topic", LESSONS, ids=lambda t: t.slug)
def test_lesson_renders_within_the_terminal(topic, width: int) -> None:  # type: ignore[no-untyped-def]
    lesson = COURSE.lesson(topic)
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, legacy_windows=False)
    console.print(render.lesson_header(lesson))
    for i in range(len(lesson.sections)):
        console.print(render.section(lesson, i))
    text = out.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    # Diagrams are drawn in code blocks: every line must survive whole, not cropped.
    for section in lesson.sections:
        in_code = False
        for line in section.body.splitlines():
            if line.lstrip().startswith("```"):
                in_code = not in_code
            elif in_code and line.strip():
                assert line.rstrip() in text, f"{section.heading}: code line cropped: {line!r}"


@pytest.mark.parametrize("topic", QUIZZES, ids=lambda t: t.slug)
def test_quiz_meets_the_course_standards(topic) -> None:  # type: ignore[no-untyped-def]
    content = COURSE.content(topic)
    lesson = COURSE.lesson(topic) if content.lesson_path else None
    assert content.quiz_path is not None
    assert lint_quiz(content.quiz_path, topic, lesson) == []


@pytest.mark.parametrize("topic", QUIZZES, ids=lambda t: t.slug)
def test_quiz_code_keeps_its_lines_at_80_columns(topic) -> None:  # type: ignore[no-untyped-def]
    """Prompts and explanations are shown as Markdown (explanations in a panel): every line
    of a fenced block must come out whole, and nothing may be wider than the terminal."""
    from rich.markdown import Markdown
    from rich.panel import Panel

    for question in COURSE.quiz(topic).questions:
        for text, boxed in ((question.prompt, False), (question.explanation, True)):
            out = io.StringIO()
            console = Console(file=out, width=80, color_system=None, legacy_windows=False)
            console.print(Panel(Markdown(text)) if boxed else Markdown(text))
            shown = out.getvalue()
            assert max(len(line) for line in shown.splitlines()) <= 80
            in_code = False
            for line in text.splitlines():
                if line.lstrip().startswith("```"):
                    in_code = not in_code
                elif in_code and line.strip():
                    assert line.rstrip() in shown, f"{question.id}: code line lost: {line!r}"


def test_the_course_is_complete() -> None:
    assert len(LESSONS) == 20 and len(QUIZZES) == 20
