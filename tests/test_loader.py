"""The loader turns course files into typed models, and names file and line when it cannot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sdtutor.content.course import Course
from sdtutor.content.loader import LESSON_SECTIONS, load_lab, load_lesson, load_quiz
from sdtutor.errors import ContentError
from sdtutor.topics import resolve
from tests.conftest import LAB_YAML

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "course"


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line holding the n-th occurrence of `needle`."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in the test text")


def content_error(
    path: Path, text: str, loader: Callable[[Path], object] = load_quiz
) -> ContentError:
    """Write `text` to `path`, load it, and return the ContentError it must raise."""
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as info:
        loader(path)
    return info.value


def assert_at(error: ContentError, path: Path, line: int, *words: str) -> None:
    """The error names this file and line, and says these words."""
    assert error.path == str(path)
    assert error.line == line, f"expected line {line}, got: {error.message}"
    assert error.message.startswith(f"{path}:{line}: "), error.message
    for word in words:
        assert word in error.message, f"{word!r} not in {error.message!r}"


# ---------------------------------------------------------------- the real course


def test_real_lesson_loads() -> None:
    lesson = load_lesson(REPO / "lessons" / "07-indexing.md")
    assert (lesson.number, lesson.slug) == (7, "indexing")
    assert 10 <= lesson.minutes <= 20
    assert lesson.objectives
    headings = [s.heading for s in lesson.sections]
    assert [h for h in headings if h in LESSON_SECTIONS] == list(LESSON_SECTIONS)


def test_real_quiz_loads() -> None:
    quiz = load_quiz(REPO / "quizzes" / "07-indexing.yaml")
    assert quiz.topic == "indexing"
    assert len(quiz.questions) >= 10
    ids = [q.id for q in quiz.questions]
    assert len(set(ids)) == len(ids)
    assert {q.type for q in quiz.questions} >= {"single", "multiple", "numeric"}


def test_real_lab_loads() -> None:
    lab = load_lab(REPO / "labs" / "07-indexing")
    assert lab.topic == "indexing"
    assert "postgres" in lab.services
    assert lab.checks and lab.hints and lab.wrong
    check_ids = {c.id for c in lab.checks}
    for case in lab.wrong:
        assert set(case.fails) <= check_ids, f"{case.name} fails unknown checks"
    assert lab.readme.is_file() and lab.checks_file.is_file()


def test_course_finds_topic_files_by_number_or_slug() -> None:
    course = Course([REPO])
    assert course.lesson(resolve("7")).slug == "indexing"
    assert course.quiz(resolve("index")).topic == "indexing"
    assert course.lab(resolve("indexing")).topic == "indexing"


def test_course_says_when_a_topic_is_not_written(tmp_path: Path) -> None:
    course = Course([FIXTURE])
    with pytest.raises(ContentError, match="lab for 'indexing' is not written"):
        course.lab(resolve("indexing"))
    with pytest.raises(ContentError, match="lesson for 'caching' is not written"):
        Course([tmp_path]).lesson(resolve("caching"))


def test_first_course_root_wins(tmp_path: Path) -> None:
    (tmp_path / "lessons").mkdir()
    own = (FIXTURE / "lessons" / "07-indexing.md").read_text(encoding="utf-8")
    (tmp_path / "lessons" / "07-indexing.md").write_text(
        own.replace("Indexing (fixture)", "An author's own"), encoding="utf-8"
    )
    assert Course([tmp_path, REPO]).lesson(resolve("7")).title == "An author's own"
    assert Course([REPO, tmp_path]).lesson(resolve("7")).title != "An author's own"


# ---------------------------------------------------------------- the fixture course


def test_fixture_lesson_sections_and_lines() -> None:
    path = FIXTURE / "lessons" / "07-indexing.md"
    text = path.read_text(encoding="utf-8")
    lesson = load_lesson(path)
    assert lesson.title == "Indexing (fixture)"
    assert lesson.minutes == 12
    assert len(lesson.objectives) == 3
    assert lesson.intro == "A short introduction before the first section."
    assert [s.heading for s in lesson.sections] == list(LESSON_SECTIONS)
    for section in lesson.sections:
        assert section.line == line_of(text, f"## {section.heading}")
    mental = lesson.section("mental model")
    assert mental is not None and "```text" in mental.body


def test_fixture_quiz_answers_are_normalised() -> None:
    quiz = load_quiz(FIXTURE / "quizzes" / "07-indexing.yaml")
    by_id = {q.id: q for q in quiz.questions}
    assert by_id["btree-stores"].answer == "b"
    assert by_id["composite-uses"].answer == frozenset({"a", "c"})
    assert by_id["lookup-order"].answer == ("b", "c", "a")
    assert by_id["btree-rows"].answer == 1_000_000.0
    assert by_id["btree-rows"].unit == "rows"
    assert by_id["pages-read"].tolerance == 1.0
    assert by_id["hash-ranges"].answer is False
    assert by_id["write-cost"].answer is True
    assert by_id["btree-stores"].section == "Mental model"
    text = quiz.path.read_text(encoding="utf-8")
    assert by_id["lookup-order"].line == line_of(text, "- id: lookup-order")


# ---------------------------------------------------------------- quiz errors

QUIZ = """\
format_version: 1
topic: indexing
questions:
  - id: pick-one
    type: single
    prompt: Which one?
    choices: [first, second, third]
    answer: b
    explanation: Because the second one is right, and here is why.
  - id: pick-some
    type: multiple
    prompt: Which ones?
    choices: [first, second, third]
    answer: [a, c]
    explanation: Because the first and third are right, and here is why.
  - id: put-in-order
    type: order
    prompt: In which order?
    choices: [first, second, third]
    answer: [c, a, b]
    explanation: Because this is the order things happen in, and here is why.
  - id: how-many
    type: numeric
    prompt: How many?
    answer: 42
    tolerance: 1
    explanation: Because six times seven is forty-two, and here is why.
  - id: yes-or-no
    type: truefalse
    prompt: True?
    answer: true
    explanation: Because it is true, and here is the reason it is true.
"""


def test_quiz_template_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(QUIZ, encoding="utf-8")
    assert [q.id for q in load_quiz(path).questions] == [
        "pick-one",
        "pick-some",
        "put-in-order",
        "how-many",
        "yes-or-no",
    ]


def test_quiz_bad_indentation(tmp_path: Path) -> None:
    text = QUIZ.replace(
        "    choices: [first, second, third]\n    answer: [a, c]",
        "   choices: [first, second, third]\n    answer: [a, c]",
    )
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "   choices", 2), "not valid YAML")


def test_quiz_missing_answer(tmp_path: Path) -> None:
    text = QUIZ.replace("    answer: [a, c]\n", "")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "- id: pick-some"), "'pick-some'", "no answer")


def test_quiz_answer_letter_beyond_choices(tmp_path: Path) -> None:
    text = QUIZ.replace("    answer: b\n", "    answer: d\n")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "answer: d"), "'d'", "abc")


def test_quiz_multiple_with_repeated_letter(tmp_path: Path) -> None:
    text = QUIZ.replace("answer: [a, c]", "answer: [a, c, a]")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "answer: [a, c, a]"), "'pick-some'", "repeated")


def test_quiz_multiple_with_empty_answer(tmp_path: Path) -> None:
    # content-format.md: a multiple answer is a list of letters, "at least one". An empty
    # one can never be answered: grading refuses an empty response.
    text = QUIZ.replace("answer: [a, c]", "answer: []")
    path = tmp_path / "q.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        quiz = load_quiz(path)
    except ContentError as exc:
        assert_at(exc, path, line_of(text, "answer: []"), "'pick-some'")
    else:
        answers = {q.id: q.answer for q in quiz.questions}
        pytest.fail(
            "load_quiz accepted a multiple-choice question with `answer: []` (loaded as "
            f"{answers['pick-some']!r}); it must raise ContentError at the answer line"
        )


def test_quiz_order_answer_missing_a_letter(tmp_path: Path) -> None:
    text = QUIZ.replace("answer: [c, a, b]", "answer: [c, a]")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "answer: [c, a]"), "'put-in-order'", "exactly once")


def test_quiz_numeric_answer_not_a_number(tmp_path: Path) -> None:
    text = QUIZ.replace("answer: 42", "answer: forty-two")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "answer: forty-two"), "'how-many'", "number")


def test_quiz_negative_tolerance(tmp_path: Path) -> None:
    text = QUIZ.replace("tolerance: 1", "tolerance: -1")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "tolerance: -1"), "tolerance")


def test_quiz_truefalse_answer_not_a_boolean(tmp_path: Path) -> None:
    text = QUIZ.replace("answer: true", "answer: maybe")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "answer: maybe"), "'yes-or-no'", "true or false")


def test_quiz_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    text = QUIZ.replace("- id: how-many", "- id: pick-one")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    first = line_of(text, "- id: pick-one")
    second = line_of(text, "- id: pick-one", 2)
    assert_at(error, path, second, "'pick-one'", f"first at line {first}")


def test_quiz_unknown_type(tmp_path: Path) -> None:
    text = QUIZ.replace("type: order", "type: ranking")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, line_of(text, "type: ranking"), "'ranking'", "single")


def test_quiz_wrong_format_version(tmp_path: Path) -> None:
    text = "# a comment first\n" + QUIZ.replace("format_version: 1", "format_version: 2")
    path = tmp_path / "q.yaml"
    error = content_error(path, text)
    assert_at(error, path, 2, "format_version 2", "not supported")
    assert "format_version 1" in error.hint


def test_quiz_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ContentError) as info:
        load_quiz(path)
    assert str(path) in info.value.message
    assert "not found" in info.value.message


# ---------------------------------------------------------------- lesson errors

LESSON = (FIXTURE / "lessons" / "07-indexing.md").read_text(encoding="utf-8")


def test_lesson_without_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    text = LESSON[LESSON.index("## Why it matters") :]
    error = content_error(path, text, load_lesson)
    assert_at(error, path, 1, "front matter")


def test_lesson_with_unclosed_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    lines = LESSON.splitlines(keepends=True)
    closing = lines.index("---\n", 1)
    text = "".join(lines[:closing] + lines[closing + 1 :])
    error = content_error(path, text, load_lesson)
    assert_at(error, path, 1, "not closed")


def test_lesson_front_matter_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    text = LESSON.replace(
        "summary: A tiny lesson that exercises every part of the lesson format.\n", ""
    )
    error = content_error(path, text, load_lesson)
    # The front matter's first key is on line 2 (line 1 is the opening ---).
    assert_at(error, path, 2, "missing field 'summary'")


def test_lesson_front_matter_field_of_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    text = LESSON.replace("minutes: 12", "minutes: twelve")
    error = content_error(path, text, load_lesson)
    assert_at(error, path, line_of(text, "minutes: twelve"), "'minutes'", "int")


def test_lesson_front_matter_yaml_error_line_is_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    text = LESSON.replace("title: Indexing (fixture)", "title: [unclosed")
    error = content_error(path, text, load_lesson)
    assert error.path == str(path)
    closing = line_of(text, "---", 2)
    assert line_of(text, "title: [unclosed") <= error.line <= closing, error.message
    assert "not valid YAML" in error.message


def test_lesson_wrong_format_version(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    text = LESSON.replace("format_version: 1", "format_version: 3")
    error = content_error(path, text, load_lesson)
    assert_at(error, path, 2, "format_version 3")


def test_lesson_unclosed_code_block_points_at_its_opening(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    fence = "  root -> internal -> leaf (key -> row address) -> heap page\n```\n"
    text = LESSON.replace(fence, "  root -> internal -> leaf (key -> row address) -> heap page\n")
    error = content_error(path, text, load_lesson)
    assert "never closed" in error.message
    opening = line_of(text, "```text")
    assert error.line == opening, (
        f"an unclosed ``` block should be reported at the line that opens it ({opening}), "
        f"where the author must fix it; got line {error.line} (the file has "
        f"{len(text.splitlines())} lines): {error.message}"
    )


def test_code_block_hides_headings(tmp_path: Path) -> None:
    path = tmp_path / "07-indexing.md"
    text = LESSON.replace("## Pitfalls\n", "## Pitfalls\n\n```markdown\n## Not a section\n```\n")
    path.write_text(text, encoding="utf-8")
    lesson = load_lesson(path)
    assert [s.heading for s in lesson.sections] == list(LESSON_SECTIONS)
    pitfalls = lesson.section("Pitfalls")
    assert pitfalls is not None and "## Not a section" in pitfalls.body


# ---------------------------------------------------------------- lab errors


def make_lab(root: Path, lab_yaml: str = LAB_YAML, case_yaml: str | None = None) -> Path:
    """A lab folder with lab.yaml and, optionally, one wrong case."""
    lab = root / "07-indexing"
    lab.mkdir()
    (lab / "lab.yaml").write_text(lab_yaml, encoding="utf-8")
    if case_yaml is not None:
        case = lab / "wrong" / "no-index"
        case.mkdir(parents=True)
        (case / "case.yaml").write_text(case_yaml, encoding="utf-8")
    return lab


def test_lab_loads(tmp_path: Path) -> None:
    lab_dir = make_lab(tmp_path, case_yaml="summary: No index at all.\nfails: [has-index]\n")
    lab = load_lab(lab_dir)
    assert lab.title == "A tiny lab"
    assert lab.setup == {"postgres": "setup.sql"}
    assert [c.id for c in lab.checks] == ["has-index"]
    assert lab.time_limit == 20.0
    assert [(w.name, w.fails, w.says) for w in lab.wrong] == [("no-index", ("has-index",), ())]


def test_lab_yaml_missing_field(tmp_path: Path) -> None:
    lab_dir = make_lab(tmp_path, LAB_YAML.replace("title: A tiny lab\n", ""))
    with pytest.raises(ContentError) as info:
        load_lab(lab_dir)
    assert_at(info.value, lab_dir / "lab.yaml", 1, "missing field 'title'")


def test_lab_yaml_duplicate_check_id(tmp_path: Path) -> None:
    text = LAB_YAML.replace("hints:", "  - id: has-index\n    title: Again\nhints:")
    lab_dir = make_lab(tmp_path, text)
    with pytest.raises(ContentError) as info:
        load_lab(lab_dir)
    assert_at(info.value, lab_dir / "lab.yaml", line_of(text, "checks:"), "unique")


def test_lab_yaml_time_limit_not_a_number(tmp_path: Path) -> None:
    text = LAB_YAML + "time_limit: fast\n"
    lab_dir = make_lab(tmp_path, text)
    try:
        load_lab(lab_dir)
    except ContentError as exc:
        assert exc.path == str(lab_dir / "lab.yaml")
        assert "time_limit" in exc.message
    except Exception as exc:  # the point is which exception escapes
        pytest.fail(
            f"`time_limit: fast` in lab.yaml escaped load_lab as {type(exc).__name__}: {exc} "
            "(a traceback for `content check`); it must be a ContentError naming lab.yaml "
            "and the time_limit line"
        )
    else:
        pytest.fail("load_lab accepted `time_limit: fast`")


def test_case_yaml_without_fails(tmp_path: Path) -> None:
    lab_dir = make_lab(tmp_path, case_yaml="summary: No index at all.\n")
    lab = load_lab(lab_dir)  # a learner's commands never read the cases
    with pytest.raises(ContentError) as info:
        lab.wrong  # noqa: B018
    case_file = lab_dir / "wrong" / "no-index" / "case.yaml"
    assert_at(info.value, case_file, 1, "missing field 'fails'")


def test_case_yaml_with_empty_fails(tmp_path: Path) -> None:
    text = "summary: No index at all.\nfails: []\n"
    lab_dir = make_lab(tmp_path, case_yaml=text)
    with pytest.raises(ContentError) as info:
        load_lab(lab_dir).wrong  # noqa: B018
    case_file = lab_dir / "wrong" / "no-index" / "case.yaml"
    assert_at(info.value, case_file, 2, "at least one check")
