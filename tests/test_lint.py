"""`sdtutor content check`: the linter finds each problem, with file and line."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from sdtutor.content.lint import Problem, lint_course, lint_lab, lint_lesson, lint_quiz
from sdtutor.content.loader import load_lesson
from sdtutor.topics import resolve
from tests.conftest import LAB_YAML

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "course"
INDEXING = resolve("indexing")


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line holding `needle`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the test text")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A writable copy of the fixture course."""
    root = tmp_path / "course"
    shutil.copytree(FIXTURE, root)
    return root


def lesson_file(root: Path) -> Path:
    return root / "lessons" / "07-indexing.md"


def quiz_file(root: Path) -> Path:
    return root / "quizzes" / "07-indexing.yaml"


def edit(path: Path, old: str, new: str) -> str:
    """Replace text in a file (it must be there); returns the new text."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text


# ---------------------------------------------------------------- clean courses


def test_fixture_course_lints_clean() -> None:
    problems, labs = lint_course(FIXTURE)
    assert problems == []
    assert labs == []


def test_real_course_lints_clean() -> None:
    problems, labs = lint_course(REPO)
    assert [str(p) for p in problems] == []
    assert "indexing" in [lab.topic for lab in labs]


def test_folder_that_is_not_a_course(tmp_path: Path) -> None:
    problems, _ = lint_course(tmp_path)
    assert len(problems) == 1
    assert "is this a course folder?" in problems[0].message


def test_problem_prints_path_and_line() -> None:
    assert str(Problem("a.md", 12, "bad")) == "a.md:12: bad"
    assert str(Problem("a.md", 0, "bad")) == "a.md: bad"


# ---------------------------------------------------------------- lessons


def test_lesson_missing_a_section(course: Path) -> None:
    edit(lesson_file(course), "## Pitfalls\n\n", "")
    problems, _ = lint_course(course)
    assert problems == [
        Problem(str(lesson_file(course)), 1, "the section '## Pitfalls' is missing")
    ]


def test_lesson_sections_out_of_order(course: Path) -> None:
    path = lesson_file(course)
    text = path.read_text(encoding="utf-8")
    go_deeper = text[text.index("## Go deeper") : text.index("## The lab")]
    text = text.replace(go_deeper, "").replace("## Why it matters", go_deeper + "## Why it matters")
    path.write_text(text, encoding="utf-8")
    _, problems = lint_lesson(path, INDEXING)
    assert len(problems) == 1, problems
    assert "out of order" in problems[0].message


def test_long_code_line_reported_at_its_line(course: Path) -> None:
    path = lesson_file(course)
    long_line = "  " + "x" * 78
    text = edit(path, "-> heap page\n", f"-> heap page\n{long_line}\n")
    # A long line of prose is fine: the terminal wraps it.
    text = edit(path, "A lookup walks", "word " * 40 + "A lookup walks")
    _, problems = lint_lesson(path, INDEXING)
    assert problems == [
        Problem(str(path), line_of(text, long_line), "a code line is 80 columns (at most 76)")
    ]


def test_code_line_of_exactly_76_columns_is_fine(course: Path) -> None:
    path = lesson_file(course)
    edit(path, "-> heap page\n", "-> heap page\n" + "y" * 76 + "\n")
    _, problems = lint_lesson(path, INDEXING)
    assert problems == []


def test_mental_model_without_diagram(course: Path) -> None:
    path = lesson_file(course)
    text = edit(path, "```text", "```")
    _, problems = lint_lesson(path, INDEXING)
    assert problems == [
        Problem(
            str(path),
            line_of(text, "## Mental model"),
            "the mental model has no diagram (a ```text block)",
        )
    ]


def test_tradeoffs_without_table_and_decide_without_checklist(course: Path) -> None:
    path = lesson_file(course)
    edit(path, "| Hash | equality only | no ranges, no sort |\n", "")
    edit(path, "| B-tree | equality, ranges, sort | space, a write per row |\n", "")
    edit(path, "| index | serves | costs |\n|---|---|---|\n", "Prose only.\n")
    text = edit(path, "- [ ] The query", "- The query")
    text = edit(path, "- [ ] The sort", "- The sort")
    _, problems = lint_lesson(path, INDEXING)
    assert sorted(problems, key=lambda p: p.line) == [
        Problem(str(path), line_of(text, "## Trade-offs"), "the trade-offs section has no table"),
        Problem(
            str(path),
            line_of(text, "## How to decide"),
            "how to decide has no checklist (- [ ] items)",
        ),
    ]


@pytest.mark.parametrize("minutes", [9, 21])
def test_lesson_minutes_out_of_range(course: Path, minutes: int) -> None:
    path = lesson_file(course)
    edit(path, "minutes: 12", f"minutes: {minutes}")
    _, problems = lint_lesson(path, INDEXING)
    assert [p.message for p in problems] == [f"minutes is {minutes}: a lesson reads in 10 to 20"]


def test_lesson_for_the_wrong_topic(course: Path) -> None:
    path = lesson_file(course)
    edit(path, "slug: indexing", "slug: caching")
    _, problems = lint_lesson(path, INDEXING)
    assert [p.message for p in problems] == ["slug is 'caching', but the file is for 'indexing'"]


def test_lesson_that_does_not_load_is_one_problem_with_its_line(course: Path) -> None:
    path = lesson_file(course)
    edit(path, "minutes: 12", "minutes: twelve")
    problems, _ = lint_course(course)
    assert problems == [
        Problem(str(path), line_of(path.read_text(), "minutes:"), "field 'minutes' must be int")
    ]


def test_orphan_files(course: Path) -> None:
    (course / "lessons" / "notes.md").write_text("draft\n", encoding="utf-8")
    (course / "lessons" / "07-indexing.txt").write_text("draft\n", encoding="utf-8")
    (course / "quizzes" / "99-nothing.yaml").write_text("x: 1\n", encoding="utf-8")
    (course / "lessons" / ".DS_Store").write_bytes(b"\0")
    problems, _ = lint_course(course)
    assert sorted((Path(p.path).name, p.line) for p in problems) == [
        ("07-indexing.txt", 0),
        ("99-nothing.yaml", 0),
        ("notes.md", 0),
    ]
    assert all("orphan file" in p.message for p in problems)


# ---------------------------------------------------------------- quizzes


def test_quiz_section_that_is_not_a_lesson_heading(course: Path) -> None:
    path = quiz_file(course)
    text = path.read_text(encoding="utf-8")
    start = text.index("- id: lookup-order")
    text = text[:start] + text[start:].replace("section: How it works", "section: Lookups", 1)
    path.write_text(text, encoding="utf-8")
    problems, _ = lint_course(course)
    assert problems == [
        Problem(
            str(path),
            line_of(text, "- id: lookup-order"),
            "question 'lookup-order': the lesson has no section 'Lookups'",
        )
    ]


def test_quiz_sections_are_checked_against_the_given_lesson(course: Path) -> None:
    lesson = load_lesson(lesson_file(course))
    assert lint_quiz(quiz_file(course), INDEXING, lesson) == []
    edit(quiz_file(course), "section: Trade-offs", "section: Tradeoffs")
    problems = lint_quiz(quiz_file(course), INDEXING, lesson)
    assert [p.message for p in problems] == [
        "question 'hash-ranges': the lesson has no section 'Tradeoffs'"
    ]


def test_quiz_with_fewer_than_ten_questions(course: Path) -> None:
    path = quiz_file(course)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["questions"] = data["questions"][:9]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    problems, _ = lint_course(course)
    assert problems == [Problem(str(path), 1, "9 questions: a quiz has at least 10")]


def test_quiz_with_too_few_question_types(course: Path) -> None:
    path = quiz_file(course)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["questions"] = [q for q in data["questions"] if q["type"] in ("single", "truefalse")]
    data["questions"] += [dict(q, id=f"{q['id']}-2") for q in data["questions"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    messages = [p.message for p in lint_quiz(path, INDEXING, None)]
    assert "question types: single, truefalse; use at least 3" in messages


def test_quiz_thin_explanation(course: Path) -> None:
    path = quiz_file(course)
    text = path.read_text(encoding="utf-8")
    old = (
        "      A hash index only answers equality; hashing destroys the order a range\n"
        "      scan needs.\n"
    )
    text = text.replace(old, "      Hashes are unordered.\n")
    path.write_text(text, encoding="utf-8")
    problems = lint_quiz(path, INDEXING, None)
    assert problems == [
        Problem(
            str(path),
            line_of(text, "- id: hash-ranges"),
            "question 'hash-ranges': the explanation is too thin to teach",
        )
    ]


def test_quiz_that_does_not_load_is_one_problem_with_its_line(course: Path) -> None:
    path = quiz_file(course)
    text = edit(path, "answer: [b, c, a]", "answer: [b, c]")
    problems, _ = lint_course(course)
    assert len(problems) == 1
    assert (problems[0].path, problems[0].line) == (str(path), line_of(text, "answer: [b, c]"))
    assert problems[0].message.startswith("question 'lookup-order'")


# ---------------------------------------------------------------- labs


CHECKS_PY = """\
from sdtutor.lab.checks import check


@check("has-index")
def has_index(ctx):
    return "The index is there."
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny, complete lab folder that lints clean."""
    # load_checks registers the module under this name; put back whatever was there.
    monkeypatch.delitem(sys.modules, "sdtutor_lab_checks_indexing", raising=False)
    root = tmp_path / "labs" / "07-indexing"
    for folder in ("starter", "solution", "wrong/no-index"):
        (root / folder).mkdir(parents=True)
    (root / "lab.yaml").write_text(LAB_YAML, encoding="utf-8")
    (root / "README.md").write_text("# Add an index\n", encoding="utf-8")
    (root / "checks.py").write_text(CHECKS_PY, encoding="utf-8")
    (root / "setup.sql").write_text("CREATE TABLE t (id int);\n", encoding="utf-8")
    (root / "starter" / "indexes.sql").write_text("-- your index here\n", encoding="utf-8")
    (root / "solution" / "indexes.sql").write_text("CREATE INDEX ON t (id);\n", encoding="utf-8")
    (root / "wrong" / "no-index" / "case.yaml").write_text(
        "summary: No index.\nfails: [has-index]\n", encoding="utf-8"
    )
    (root / "wrong" / "no-index" / "indexes.sql").write_text("SELECT 1;\n", encoding="utf-8")
    return root


def test_tiny_lab_lints_clean(lab: Path) -> None:
    spec, problems = lint_lab(lab, INDEXING)
    assert problems == []
    assert spec is not None and spec.topic == "indexing"


def test_tiny_lab_in_a_course_is_returned_for_proofs(lab: Path) -> None:
    problems, labs = lint_course(lab.parent.parent)
    assert problems == []
    assert [spec.path for spec in labs] == [lab]


def test_lab_orphan_file_and_check_without_function(lab: Path) -> None:
    (lab / "notes.txt").write_text("todo\n", encoding="utf-8")
    edit(
        lab / "lab.yaml",
        "hints:",
        "  - id: no-seq-scan\n    title: The plan has no Seq Scan\nhints:",
    )
    _, problems = lint_lab(lab, INDEXING)
    assert sorted(problems, key=str) == sorted(
        [
            Problem(str(lab / "notes.txt"), 0, "orphan file: nothing in lab.yaml uses it"),
            Problem(
                str(lab / "lab.yaml"), 0, "check 'no-seq-scan' has no @check function in checks.py"
            ),
        ],
        key=str,
    )


def test_lab_check_function_not_in_lab_yaml(lab: Path) -> None:
    with (lab / "checks.py").open("a", encoding="utf-8") as f:
        f.write('\n\n@check("extra")\ndef extra(ctx):\n    return "ok"\n')
    _, problems = lint_lab(lab, INDEXING)
    assert problems == [
        Problem(str(lab / "checks.py"), 0, "@check('extra') is not listed in lab.yaml")
    ]


def test_lab_checks_py_that_cannot_import(lab: Path) -> None:
    (lab / "checks.py").write_text("import no_such_module_anywhere\n", encoding="utf-8")
    _, problems = lint_lab(lab, INDEXING)
    assert len(problems) == 1
    assert problems[0].path == str(lab / "checks.py")
    assert "cannot be imported" in problems[0].message


def test_lab_missing_pieces(lab: Path) -> None:
    (lab / "starter" / "indexes.sql").unlink()
    (lab / "setup.sql").unlink()
    (lab / "README.md").unlink()
    edit(lab / "wrong" / "no-index" / "case.yaml", "fails: [has-index]", "fails: [nope]")
    messages = sorted(p.message for p in lint_lab(lab, INDEXING)[1])
    assert messages == [
        "README.md is missing",
        "fails names unknown check 'nope'",
        "setup file setup.sql (for postgres) is missing",
        "workspace file starter/indexes.sql is missing",
    ]


def test_lab_without_wrong_cases(lab: Path) -> None:
    shutil.rmtree(lab / "wrong")
    messages = [p.message for p in lint_lab(lab, INDEXING)[1]]
    assert sorted(messages) == [
        "no wrong solutions: add at least one case",
        "the wrong/ folder is missing",
    ]


def test_lab_that_does_not_load_is_one_problem(lab: Path) -> None:
    edit(lab / "lab.yaml", "title: A tiny lab\n", "")
    spec, problems = lint_lab(lab, INDEXING)
    assert spec is None
    assert problems == [Problem(str(lab / "lab.yaml"), 1, "missing field 'title'")]


def test_quiz_with_too_few_scenarios(course: Path) -> None:
    path = quiz_file(course)
    text = path.read_text(encoding="utf-8").replace("    scenario: true\n", "", 1)
    path.write_text(text, encoding="utf-8")
    problems = lint_quiz(path, INDEXING, None)
    assert [p.message for p in problems] == [
        "2 scenario questions (scenario: true); use at least 3"
    ]


def test_quiz_whose_right_answers_are_the_longest(course: Path) -> None:
    path = quiz_file(course)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for q in data["questions"]:
        if q["type"] == "single":
            right = "abcdef".index(q["answer"])
            q["choices"][right] += " (this one is much longer than any of the others)"
        if q["type"] == "multiple":
            for letter in q["answer"]:
                q["choices"]["abcdef".index(letter)] += " (and a long justification)"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    messages = [p.message for p in lint_quiz(path, INDEXING, None)]
    assert any("the right answer is the longest choice in" in m for m in messages)
    assert any("right choices are" in m and "as long as the wrong ones" in m for m in messages)


# ---------------------------------------------------------------- schemas, wired in


def test_lesson_front_matter_is_checked_against_its_schema(course: Path) -> None:
    path = lesson_file(course)
    text = edit(path, "minutes: 12\n", "minutes: 12\nauthor: someone\n")
    text = edit(path, "  - Read an EXPLAIN plan\n", "")
    _, problems = lint_lesson(path, INDEXING)
    assert problems == [
        Problem(
            str(path),
            line_of(text, "author:"),
            "author: unknown field 'author' (fields here: format_version, number, slug, title, "
            "summary, minutes, objectives)",
        ),
        Problem(
            str(path), line_of(text, "objectives:"), "objectives: needs at least 3 item(s), has 2"
        ),
    ]


def test_quiz_is_checked_against_its_schema(course: Path) -> None:
    path = quiz_file(course)
    text = edit(path, "- id: composite-uses", "- id: Composite_Uses")
    text = edit(path, "    idea: fan-out\n", "    idea: fan-out\n    ideas: [pages]\n")
    problems = lint_quiz(path, INDEXING, None)
    assert problems == [
        Problem(
            str(path),
            line_of(text, "- id: Composite_Uses"),
            'questions[1] (Composite_Uses).id: "Composite_Uses" does not fit: '
            "lowercase-with-dashes: letters, digits and single dashes.",
        ),
        Problem(
            str(path),
            line_of(text, "ideas: [pages]"),
            "questions[2] (btree-rows).ideas: unknown field 'ideas' (did you mean 'idea'?)",
        ),
    ]


def test_lab_yaml_and_case_yaml_are_checked_against_their_schemas(lab: Path) -> None:
    text = edit(lab / "lab.yaml", "hints:", "time-limit: 20\nhints:")
    case = lab / "wrong" / "no-index" / "case.yaml"
    case.write_text("summary: No index.\nfails: [has-index]\nsay: [index]\n", encoding="utf-8")
    spec, problems = lint_lab(lab, INDEXING)
    assert spec is not None  # the loader takes both files; only the schemas refuse them
    assert problems == [
        Problem(
            str(lab / "lab.yaml"),
            line_of(text, "time-limit:"),
            "time-limit: unknown field 'time-limit' (did you mean 'time_limit'?)",
        ),
        Problem(str(case), 3, "say: unknown field 'say' (did you mean 'says'?)"),
    ]
    # A lab with problems is not handed on to be proved.
    assert lint_course(lab.parent.parent)[1] == []


def test_loader_error_is_said_once_and_other_schema_problems_still_show(lab: Path) -> None:
    text = edit(
        lab / "lab.yaml",
        "services: [postgres]\n",
        "services:\n  postgres: postgres\n  cache: memcached\nlimit: {memory_mb: 64}\n",
    )
    spec, problems = lint_lab(lab, INDEXING)
    assert spec is None
    assert problems == [
        # The loader's word for the bad kind (its line is the services key); the schema's
        # word for the same thing, on the cache line, is left out.
        Problem(
            str(lab / "lab.yaml"),
            line_of(text, "services:"),
            "service 'cache' has kind 'memcached'; the kinds are postgres, redis, rabbitmq",
        ),
        Problem(
            str(lab / "lab.yaml"),
            line_of(text, "limit:"),
            "limit: unknown field 'limit' (did you mean 'limits'?)",
        ),
    ]


def test_quiz_loader_error_on_one_question_and_a_schema_problem_on_another(course: Path) -> None:
    path = quiz_file(course)
    text = edit(path, "    answer: b\n", "    answer: z\n")
    text = edit(path, "    unit: rows\n", "    unit: rows\n    level: hard\n")
    problems, _ = lint_course(course)
    assert problems == [
        Problem(
            str(path),
            line_of(text, "answer: z"),
            "answer 'z' is not one of the choice letters abc",
        ),
        Problem(
            str(path),
            line_of(text, "level: hard"),
            "questions[2] (btree-rows).level: unknown field 'level' (fields here: id, type, "
            "idea, section, prompt, choices, answer, tolerance, unit, explanation, scenario)",
        ),
    ]


def test_a_broken_case_is_reported_by_the_loader_once(lab: Path) -> None:
    case = lab / "wrong" / "no-index" / "case.yaml"
    case.write_text("summary: No index.\nfails: []\n", encoding="utf-8")
    spec, problems = lint_lab(lab, INDEXING)
    assert spec is None
    assert problems == [Problem(str(case), 2, "'fails' names at least one check id")]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("minutes: 12", "minutes: 45", "minutes is 45: a lesson reads in 10 to 20"),
        ("slug: indexing", "slug: indexes", "slug is 'indexes', but the file is for 'indexing'"),
        ("number: 7", "number: 70", "number is 70, but the file is for topic 7"),
    ],
)
def test_a_lint_rule_and_the_schema_on_the_same_field_say_it_once(
    course: Path, old: str, new: str, message: str
) -> None:
    path = lesson_file(course)
    text = edit(path, old, new)
    _, problems = lint_lesson(path, INDEXING)
    assert problems == [Problem(str(path), line_of(text, new), message)]


def test_a_quiz_for_an_unknown_topic_is_said_once(course: Path) -> None:
    path = quiz_file(course)
    edit(path, "topic: indexing", "topic: indexes")
    assert lint_quiz(path, INDEXING, None) == [
        Problem(str(path), 2, "topic is 'indexes', but the file is for 'indexing'")
    ]


def test_a_lab_harness_named_in_lab_yaml_is_not_an_orphan(lab: Path) -> None:
    text = edit(lab / "lab.yaml", "hints:", "harness: harness.py\nhints:")
    _, problems = lint_lab(lab, INDEXING)
    assert problems == [
        Problem(
            str(lab / "lab.yaml"), line_of(text, "harness:"), "harness file harness.py is missing"
        )
    ]
    (lab / "harness.py").write_text("print('hi')\n", encoding="utf-8")
    assert lint_lab(lab, INDEXING)[1] == []


# ---------------------------------------------------------------- quiz text as Markdown

COLLAPSING_PROMPT = """    prompt: |
      The job table has this index:

        CREATE INDEX jobs_idx ON jobs (run_at)
          WHERE state = 'queued';

      What does a B-tree leaf entry hold?
"""
FENCED_PROMPT = """    prompt: |
      The job table has this index:

      ```sql
      CREATE INDEX jobs_idx ON jobs (run_at)
        WHERE state = 'queued';
      ```

      An indented code block after a blank line keeps its lines:

          like this one
          and this one

      A list after a blank line is meant as one:

      - first item, wrapped over
        two lines
      - a second item

      What does a B-tree leaf entry hold?
"""


def rendered(markdown: str) -> str:
    """Markdown as the quiz shows it, at 80 columns, without colour."""
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console(width=80, color_system=None, record=True, file=io.StringIO())
    console.print(Markdown(markdown))
    return console.export_text()


def test_quiz_text_that_markdown_would_collapse_is_reported_at_its_line(course: Path) -> None:
    path = quiz_file(course)
    edit(path, "    prompt: What does a B-tree leaf entry hold?\n", COLLAPSING_PROMPT)
    edit(
        path,
        "      A hash index only answers equality; hashing destroys the order a range\n",
        "      A hash index only answers equality; a range scan reads leaves 1 + 2\n"
        "      + 3 in order, and hashing destroys the order a range\n",
    )
    choice = "      - |\n        Read the leaf:\n          page\n"
    text = edit(path, "      - Read the leaf page\n", choice)
    problems = lint_quiz(path, INDEXING, None)
    assert problems == [
        Problem(
            str(path),
            line_of(text, "CREATE INDEX jobs_idx"),
            "question 'btree-stores' prompt: indented text outside a ``` fence: Markdown drops "
            "the indent and joins the lines into one paragraph; put code in a fenced block",
        ),
        Problem(
            str(path),
            line_of(text, "Read the leaf:") + 1,
            "question 'lookup-order' choice c: indented text outside a ``` fence: Markdown "
            "drops the indent and joins the lines into one paragraph; put code in a fenced block",
        ),
        Problem(
            str(path),
            line_of(text, "+ 3 in order"),
            "question 'hash-ranges' explanation: the line starts with '+ ', so Markdown makes "
            "it a list item: reflow the text, or put a blank line before a list",
        ),
    ]


def test_what_the_rule_reports_really_collapses_when_rendered() -> None:
    """The premise of the rule, checked against the renderer the quiz uses."""
    prompt = yaml.safe_load("prompt: |\n" + COLLAPSING_PROMPT.split("|\n", 1)[1])["prompt"]
    assert "(run_at) WHERE state" in rendered(prompt)  # two code lines became one
    assert "• 32 = 63 s" in rendered("The wait is 1 + 2 + 4 + 8 + 16\n+ 32 = 63 s.")  # a bullet
    fenced = yaml.safe_load("prompt: |\n" + FENCED_PROMPT.split("|\n", 1)[1])["prompt"]
    out = rendered(fenced)
    assert "CREATE INDEX jobs_idx ON jobs (run_at)  " in out
    assert "  WHERE state = 'queued';" in out
    assert "like this one  " in out and "and this one  " in out


def test_fenced_code_lists_and_indented_code_blocks_are_fine(course: Path) -> None:
    path = quiz_file(course)
    edit(path, "    prompt: What does a B-tree leaf entry hold?\n", FENCED_PROMPT)
    assert lint_quiz(path, INDEXING, None) == []


def test_workspace_files_in_folders_are_linted_as_files(lab: Path) -> None:
    """A workspace file in a folder (`k8s/deployment.yaml`): a wrong case that changes
    only it changes a file, and a solution file in a folder must still be named."""
    edit(lab / "lab.yaml", "workspace: [indexes.sql]", "workspace: [indexes.sql, k8s/app.yaml]")
    for folder in ("starter", "solution", "wrong/no-index"):
        (lab / folder / "k8s").mkdir()
        (lab / folder / "k8s" / "app.yaml").write_text("replicas: 2\n", encoding="utf-8")
    (lab / "wrong" / "no-index" / "indexes.sql").unlink()
    assert lint_lab(lab, INDEXING)[1] == []

    (lab / "solution" / "k8s" / "extra.yaml").write_text("{}\n", encoding="utf-8")
    (lab / "wrong" / "no-index" / "k8s" / "app.yaml").unlink()
    assert sorted(p.message for p in lint_lab(lab, INDEXING)[1]) == [
        "not a workspace file named in lab.yaml",
        "the case changes no file",
    ]
