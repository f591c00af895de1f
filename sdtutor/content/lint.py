"""`sdtutor content check`: the course linter.

Finds every problem it can (not just the first), each with file and line, so an author
can fix a whole course in one pass: the loader's first error in a file, the linter's own
rules, and every way a file breaks its JSON Schema (sdtutor.schemas), each said once.
Lab proofs (starter fails, solution passes, wrong cases fail) live in sdtutor.lab.proof
and run after the lint.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdtutor.content.loader import (
    LESSON_SECTIONS,
    LineDict,
    load_lab,
    load_lesson,
    load_quiz,
    read_yaml,
)
from sdtutor.content.models import LETTERS, LabSpec, Lesson, Question
from sdtutor.errors import ContentError, LabError
from sdtutor.topics import TOPICS, Topic

_BY_DIRNAME = {t.dirname: t for t in TOPICS}
CODE_WIDTH = 76
MIN_QUESTIONS = 10
MIN_TYPES = 3
MIN_SCENARIOS = 3
LONGEST_SHARE = 0.5
"""At most this share of single-choice questions may have the right answer as the one
longest choice (by chance about a quarter would): more, and length gives it away."""
LENGTH_RATIO = 1.25
"""In multiple-choice questions, right choices may be at most this much longer than the
wrong ones on average, over the whole quiz."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the course."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: {self.message}"
            if self.line
            else f"{self.path}: {self.message}"
        )


def _from_error(exc: ContentError) -> Problem:
    return Problem(exc.path, exc.line, exc.detail)


# ---------------------------------------------------------------- schemas


def _parsed(path: Path) -> Any:
    """A YAML course file as the loader reads it (lines recorded), or None if unreadable."""
    try:
        return read_yaml(path)
    except ContentError:  # missing, not UTF-8 or not YAML: the loader reports it
        return None


def _front_matter(path: Path) -> Any:
    """A lesson's front matter with file line numbers, or None if it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except (OSError, UnicodeDecodeError, StopIteration):
        return None
    if lines[0].strip() != "---":
        return None
    try:
        # A blank line for the opening '---' keeps the file's line numbers.
        return read_yaml(path, "\n" + "\n".join(lines[1:end]))
    except ContentError:
        return None


def _last_line(node: Any) -> int:
    """The last line a parsed YAML node reaches (0 where nothing in it records lines)."""
    if isinstance(node, LineDict):
        own = max([node.line, *node.key_lines.values()])
        return max([own, *(_last_line(v) for v in node.values())])
    if isinstance(node, list):
        return max([0, *(_last_line(v) for v in node)])
    return 0


def _spans_at(node: Any, line: int) -> list[tuple[int, int]]:
    """Line spans of the mappings and lists whose key stands on `line`, at any depth."""
    spans: list[tuple[int, int]] = []
    if isinstance(node, LineDict):
        for key, value in node.items():
            if node.key_lines.get(key) == line and isinstance(value, dict | list):
                spans.append((line, max(line, _last_line(value))))
            spans += _spans_at(value, line)
    elif isinstance(node, list):
        for item in node:
            spans += _spans_at(item, line)
    return spans


def _schema_problems(
    kind: str,
    path: Path,
    data: Any,
    loader_error: ContentError | None = None,
    reported: Collection[str] = (),
) -> list[Problem]:
    """How `data` breaks the schema of `kind`, less what is already said.

    Left out: problems of the top-level fields in `reported` (the linter's own rules
    said those), and the schema's wording of `loader_error` when it is about this file:
    problems on its line, or else (the loader names a field, the schema its items) those
    inside the mapping or list whose key stands on that line.
    """
    if not isinstance(data, LineDict):  # not a mapping: the loader says so
        return []
    from sdtutor.schemas import problems as schema_problems

    found = [
        p
        for p in schema_problems(kind, data)
        if not any(p.where == f or p.where.startswith((f + ".", f + "[")) for f in reported)
    ]
    if loader_error is not None and loader_error.line and loader_error.path == str(path):
        line = loader_error.line
        if any(p.line == line for p in found):
            found = [p for p in found if p.line != line]
        else:
            spans = _spans_at(data, line)
            found = [p for p in found if not any(a <= p.line <= b for a, b in spans)]
    return [
        Problem(str(path), p.line, f"{p.where}: {p.message}" if p.where else p.message)
        for p in found
    ]


def lint_lesson(path: Path, topic: Topic | None) -> tuple[Lesson | None, list[Problem]]:
    """Problems in one lesson file."""
    problems: list[Problem] = []
    meta = _front_matter(path)
    try:
        lesson = load_lesson(path)
    except ContentError as exc:
        return None, [_from_error(exc), *_schema_problems("lesson", path, meta, exc)]
    p = str(path)
    key_lines: dict[str, int] = getattr(meta, "key_lines", {})
    reported: list[str] = []
    if topic is not None:
        if lesson.number != topic.number:
            reported.append("number")
            problems.append(
                Problem(
                    p,
                    key_lines.get("number", 1),
                    f"number is {lesson.number}, but the file is for topic {topic.number}",
                )
            )
        if lesson.slug != topic.slug:
            reported.append("slug")
            problems.append(
                Problem(
                    p,
                    key_lines.get("slug", 1),
                    f"slug is '{lesson.slug}', but the file is for '{topic.slug}'",
                )
            )
    if not 10 <= lesson.minutes <= 20:
        reported.append("minutes")
        problems.append(
            Problem(
                p,
                key_lines.get("minutes", 1),
                f"minutes is {lesson.minutes}: a lesson reads in 10 to 20",
            )
        )
    problems += _schema_problems("lesson", path, meta, reported=reported)
    headings = [s.heading for s in lesson.sections]
    expected = [h for h in LESSON_SECTIONS if h in headings]
    for heading in LESSON_SECTIONS:
        if heading not in headings:
            problems.append(Problem(p, 1, f"the section '## {heading}' is missing"))
    ordered = [h for h in headings if h in LESSON_SECTIONS]
    if ordered != expected:
        problems.append(Problem(p, 1, f"sections are out of order: {', '.join(ordered)}"))
    mental = lesson.section("Mental model")
    if mental and "```text" not in mental.body:
        problems.append(
            Problem(p, mental.line, "the mental model has no diagram (a ```text block)")
        )
    tradeoffs = lesson.section("Trade-offs")
    if tradeoffs and not any(line.lstrip().startswith("|") for line in tradeoffs.body.splitlines()):
        problems.append(Problem(p, tradeoffs.line, "the trade-offs section has no table"))
    decide = lesson.section("How to decide")
    if decide and "- [ ]" not in decide.body:
        problems.append(Problem(p, decide.line, "how to decide has no checklist (- [ ] items)"))
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code and len(line) > CODE_WIDTH:
            problems.append(
                Problem(p, number, f"a code line is {len(line)} columns (at most {CODE_WIDTH})")
            )
    return lesson, problems


def lint_quiz(path: Path, topic: Topic | None, lesson: Lesson | None) -> list[Problem]:
    """Problems in one quiz file."""
    data = _parsed(path)
    try:
        quiz = load_quiz(path)
    except ContentError as exc:
        return [_from_error(exc), *_schema_problems("quiz", path, data, exc)]
    p = str(path)
    problems: list[Problem] = []
    reported: list[str] = []
    if topic is not None and quiz.topic != topic.slug:
        reported.append("topic")
        problems.append(
            Problem(
                p,
                getattr(data, "key_lines", {}).get("topic", 2),
                f"topic is '{quiz.topic}', but the file is for '{topic.slug}'",
            )
        )
    problems += _schema_problems("quiz", path, data, reported=reported)
    if len(quiz.questions) < MIN_QUESTIONS:
        problems.append(
            Problem(p, 1, f"{len(quiz.questions)} questions: a quiz has at least {MIN_QUESTIONS}")
        )
    types = {q.type for q in quiz.questions}
    if len(types) < MIN_TYPES:
        problems.append(
            Problem(p, 1, f"question types: {', '.join(sorted(types))}; use at least {MIN_TYPES}")
        )
    scenarios = sum(q.scenario for q in quiz.questions)
    if scenarios < MIN_SCENARIOS:
        problems.append(
            Problem(
                p,
                1,
                f"{scenarios} scenario questions (scenario: true); use at least {MIN_SCENARIOS}",
            )
        )
    problems += _length_tells(p, quiz.questions)
    problems += _markdown_collapses(path, data, quiz.questions)
    headings = {s.heading for s in lesson.sections} if lesson else set()
    for q in quiz.questions:
        if lesson and q.section and q.section not in headings:
            problems.append(
                Problem(p, q.line, f"question '{q.id}': the lesson has no section '{q.section}'")
            )
        if len(q.explanation) < 40:
            problems.append(
                Problem(p, q.line, f"question '{q.id}': the explanation is too thin to teach")
            )
    return problems


_LIST_ITEM = re.compile(r"([-+*]|\d{1,9}[.)])( |$)")
_INTERRUPTS = re.compile(r"([-+*]|1[.)]) +\S")
"""A list item that can start inside a paragraph (CommonMark: a bullet, or an ordered
item numbered 1), so a wrapped line that happens to begin with one becomes a list."""
_SETEXT = re.compile(r"(=+|-+) *")
_HEADING = re.compile(r"#{1,6}( |$)")


def _collapses(text: str) -> list[tuple[int, str]]:
    """Where `text`, rendered as Markdown, loses lines the author wrote: (index of the
    first line in `text`, what happens). Fenced blocks are left alone."""
    found: list[tuple[int, str]] = []
    lines = text.splitlines()
    fence = ""
    in_paragraph = in_list = in_indented_code = False
    in_indented_run = False  # one problem per run of indented lines, not one per line
    for i, line in enumerate(lines):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            in_paragraph = in_list = in_indented_code = False
            continue
        if not stripped.strip():
            in_paragraph = in_indented_code = in_indented_run = False
            continue
        if indent:
            if in_list:  # a list item's continuation: Markdown means it to wrap
                continue
            if indent >= 4 and (in_indented_code or not in_paragraph):
                in_indented_code = True  # a real indented code block keeps its lines
                continue
            if not in_indented_run:
                in_indented_run = True
                found.append(
                    (
                        i,
                        "indented text outside a ``` fence: Markdown drops the indent and "
                        "joins the lines into one paragraph; put code in a fenced block",
                    )
                )
            in_paragraph = True
            continue
        if not in_paragraph and not in_indented_code:
            in_list = False  # text after a blank line, not indented: the list has ended
        in_indented_run = in_indented_code = False
        if _LIST_ITEM.match(stripped):
            if in_paragraph and not in_list and _INTERRUPTS.match(stripped):
                found.append(
                    (
                        i,
                        f"the line starts with '{stripped.split()[0]} ', so Markdown makes it "
                        "a list item: reflow the text, or put a blank line before a list",
                    )
                )
            in_list = True
            in_paragraph = True
            continue
        if in_paragraph and not in_list and _SETEXT.fullmatch(stripped):
            found.append((i, "a line of only '=' or '-' turns the line above into a heading"))
        elif _HEADING.match(stripped):
            found.append((i, "a line starting with '#' becomes a heading: reflow the text"))
        in_paragraph = True
    return found


def _markdown_collapses(path: Path, data: Any, questions: tuple[Question, ...]) -> list[Problem]:
    """Quiz text that would lose its lines when shown as Markdown, at its file line."""
    try:
        file_lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    raw = data.get("questions") if isinstance(data, LineDict) else None
    problems: list[Problem] = []
    for n, q in enumerate(questions):
        raw_q = raw[n] if isinstance(raw, list) and n < len(raw) else None
        key_lines: dict[str, int] = getattr(raw_q, "key_lines", {})
        texts = [("prompt", "prompt", q.prompt), ("explanation", "explanation", q.explanation)]
        texts += [(f"choice {LETTERS[k]}", "choices", c) for k, c in enumerate(q.choices)]
        for field, key, text in texts:
            for index, what in _collapses(text):
                start = key_lines.get(key, q.line)
                line = _file_line(file_lines, start, text.splitlines()[index])
                problems.append(Problem(str(path), line, f"question '{q.id}' {field}: {what}"))
    return problems


def _file_line(file_lines: list[str], start: int, wanted: str) -> int:
    """The number of the first file line from `start` that ends with `wanted` (or `start`)."""
    for number in range(max(start, 1), len(file_lines) + 1):
        if file_lines[number - 1].rstrip().endswith(wanted.rstrip()):
            return number
    return start


def _length_tells(path: str, questions: tuple[Question, ...]) -> list[Problem]:
    """Right answers that can be spotted by their length alone."""
    problems = []
    single = [q for q in questions if q.type == "single"]
    longest = 0
    for q in single:
        lengths = [len(c) for c in q.choices]
        right = lengths[LETTERS.index(q.answer)]
        if right == max(lengths) and lengths.count(right) == 1:
            longest += 1
    if single and longest > max(2, int(len(single) * LONGEST_SHARE)):
        problems.append(
            Problem(
                path,
                1,
                f"the right answer is the longest choice in {longest} of {len(single)} "
                "single-choice questions: learners can guess by length; make the wrong "
                "choices as full and plausible as the right one",
            )
        )
    right_lengths: list[int] = []
    wrong_lengths: list[int] = []
    for q in questions:
        if q.type == "multiple":
            for letter, choice in zip(LETTERS, q.choices, strict=False):
                (right_lengths if letter in q.answer else wrong_lengths).append(len(choice))
    if right_lengths and wrong_lengths:
        ratio = (sum(right_lengths) / len(right_lengths)) / (
            sum(wrong_lengths) / len(wrong_lengths)
        )
        if ratio > LENGTH_RATIO:
            problems.append(
                Problem(
                    path,
                    1,
                    f"in multiple-choice questions the right choices are {ratio:.1f}x as long as "
                    "the wrong ones on average: balance them",
                )
            )
    return problems


def lint_lab(lab_dir: Path, topic: Topic | None) -> tuple[LabSpec | None, list[Problem]]:
    """Problems in one lab folder (its checks.py is imported to match check ids)."""
    data = _parsed(lab_dir / "lab.yaml")
    cases = sorted((lab_dir / "wrong").glob("*/case.yaml"))
    try:
        lab = load_lab(lab_dir)
        lab.wrong  # noqa: B018 - read now, so a broken case.yaml is reported like lab.yaml
    except ContentError as exc:
        return None, [
            _from_error(exc),
            *_schema_problems("lab", lab_dir / "lab.yaml", data, exc),
            *(p for c in cases for p in _schema_problems("case", c, _parsed(c), exc)),
        ]
    yaml_path = str(lab_dir / "lab.yaml")
    problems: list[Problem] = []
    reported: list[str] = []
    if topic is not None and lab.topic != topic.slug:
        reported.append("topic")
        problems.append(
            Problem(
                yaml_path,
                getattr(data, "key_lines", {}).get("topic", 2),
                f"topic is '{lab.topic}', but the folder is for '{topic.slug}'",
            )
        )
    problems += _schema_problems("lab", lab_dir / "lab.yaml", data, reported=reported)
    for case_file in cases:
        problems += _schema_problems("case", case_file, _parsed(case_file))
    for required in ("README.md", "checks.py"):
        if not (lab_dir / required).is_file():
            problems.append(Problem(str(lab_dir), 0, f"{required} is missing"))
    for folder in ("starter", "solution", "wrong"):
        if not (lab_dir / folder).is_dir():
            problems.append(Problem(str(lab_dir), 0, f"the {folder}/ folder is missing"))
    for name in lab.workspace:
        if not (lab.starter / name).is_file():
            problems.append(Problem(yaml_path, 0, f"workspace file starter/{name} is missing"))
    for service, setup in lab.setup.items():
        if not (lab_dir / setup).is_file():
            problems.append(Problem(yaml_path, 0, f"setup file {setup} (for {service}) is missing"))
    harness = data.get("harness") if isinstance(data, dict) else None
    if isinstance(harness, str) and not (lab_dir / harness).is_file():
        line = getattr(data, "key_lines", {}).get("harness", 0)
        problems.append(Problem(yaml_path, line, f"harness file {harness} is missing"))
    for name in lab.apply:
        if name not in lab.workspace:
            problems.append(
                Problem(yaml_path, 0, f"apply names {name}, which is not a workspace file")
            )
    if not lab.wrong:
        problems.append(
            Problem(str(lab_dir / "wrong"), 0, "no wrong solutions: add at least one case")
        )
    check_ids = {c.id for c in lab.checks}
    if (lab_dir / "checks.py").is_file():
        from sdtutor.lab.checks import load_checks

        try:
            functions = load_checks(lab)
        except (LabError, Exception) as exc:  # an author's checks.py may raise anything
            problems.append(Problem(str(lab.checks_file), 0, f"cannot be imported: {exc}"))
        else:
            for cid in sorted(check_ids - set(functions)):
                problems.append(
                    Problem(yaml_path, 0, f"check '{cid}' has no @check function in checks.py")
                )
            for cid in sorted(set(functions) - check_ids):
                problems.append(
                    Problem(str(lab.checks_file), 0, f"@check('{cid}') is not listed in lab.yaml")
                )
    for case in lab.wrong:
        for cid in case.fails:
            if cid not in check_ids:
                problems.append(
                    Problem(str(case.path / "case.yaml"), 0, f"fails names unknown check '{cid}'")
                )
        extra = [
            p
            for p in case.path.rglob("*")
            if p.is_file() and p.name != "case.yaml" and "__pycache__" not in p.parts
        ]
        if not extra:
            problems.append(Problem(str(case.path), 0, "the case changes no file"))
    known = {"lab.yaml", "README.md", "checks.py", *lab.setup.values()}
    if isinstance(harness, str):
        known.add(harness)
    for path in sorted(lab_dir.iterdir()):
        if path.is_file() and path.name not in known:
            problems.append(Problem(str(path), 0, "orphan file: nothing in lab.yaml uses it"))
        if path.is_dir() and path.name not in ("starter", "solution", "wrong", "__pycache__"):
            problems.append(Problem(str(path), 0, "orphan folder: nothing in lab.yaml uses it"))
    for folder in ("solution",):
        top = lab_dir / folder
        for path in sorted(top.rglob("*")) if top.is_dir() else []:
            if "__pycache__" in path.parts:
                continue
            if path.is_file() and path.relative_to(top).as_posix() not in lab.workspace:
                problems.append(Problem(str(path), 0, "not a workspace file named in lab.yaml"))
    return lab, problems


def lint_course(root: Path) -> tuple[list[Problem], list[LabSpec]]:
    """Every problem in a course folder, and the labs that loaded (for proofs)."""
    problems: list[Problem] = []
    labs: list[LabSpec] = []
    lessons: dict[str, Lesson] = {}
    found_any = False
    for sub, suffix in (("lessons", ".md"), ("quizzes", ".yaml")):
        folder = root / sub
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            found_any = True
            if path.name.startswith("."):
                continue
            topic = _BY_DIRNAME.get(path.stem) if path.suffix == suffix else None
            if topic is None:
                problems.append(
                    Problem(str(path), 0, f"orphan file: not named NN-slug{suffix} after a topic")
                )
                continue
            if sub == "lessons":
                lesson, found = lint_lesson(path, topic)
                if lesson:
                    lessons[topic.slug] = lesson
            else:
                found = lint_quiz(path, topic, lessons.get(topic.slug))
            problems += found
    labs_dir = root / "labs"
    for path in sorted(labs_dir.iterdir()) if labs_dir.is_dir() else []:
        found_any = True
        topic = _BY_DIRNAME.get(path.name)
        if topic is None or not path.is_dir():
            problems.append(
                Problem(str(path), 0, "orphan: not a lab folder named NN-slug after a topic")
            )
            continue
        lab, found = lint_lab(path, topic)
        problems += found
        if lab is not None and not found:
            labs.append(lab)
    if not found_any:
        problems.append(
            Problem(str(root), 0, "no lessons/, quizzes/ or labs/ here: is this a course folder?")
        )
    return problems, labs


__all__ = ["Problem", "lint_course", "lint_lab", "lint_lesson", "lint_quiz"]
