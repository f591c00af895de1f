"""The JSON Schemas of course files: they fit the real course and reject broken files."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sdtutor import schemas
from sdtutor.content.loader import load_lab, read_yaml
from sdtutor.content.models import LETTERS, QUESTION_TYPES, Limits
from sdtutor.errors import ContentError
from sdtutor.schemas import SCHEMA_DIR, load_schema, validate
from sdtutor.topics import TOPICS
from tests.conftest import LAB_YAML, REPO

FIXTURE = REPO / "tests" / "fixtures" / "course"
KINDS = ("lab", "quiz", "lesson-front-matter", "case")
DRAFT_07_KEYWORDS = {
    "$schema", "$id", "$ref", "$comment", "$defs", "title", "description", "default",
    "examples", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "items", "maxItems", "minItems", "uniqueItems",
    "maxProperties", "minProperties", "required", "additionalProperties", "properties",
    "patternProperties", "propertyNames", "const", "enum", "type", "if", "then", "else",
    "allOf", "anyOf", "oneOf", "not",
}  # fmt: skip
"""Keywords VS Code's YAML extension (draft-07) understands, plus $defs for references."""


def front_matter(path: Path) -> Any:
    """A lesson's front matter, parsed by the loader's YAML reader (with line numbers)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    end = lines.index("---", 1)
    return read_yaml(path, "\n".join(lines[1:end]), line_offset=1)


def course_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file of a course that has a schema, with its kind."""
    yield from (("lab", p) for p in sorted(root.glob("labs/*/lab.yaml")))
    yield from (("case", p) for p in sorted(root.glob("labs/*/wrong/*/case.yaml")))
    yield from (("quiz", p) for p in sorted(root.glob("quizzes/*.yaml")))
    yield from (("lesson", p) for p in sorted(root.glob("lessons/*.md")))


def parsed(kind: str, path: Path) -> Any:
    return front_matter(path) if kind == "lesson" else read_yaml(path)


REAL = [*course_files(REPO), *course_files(FIXTURE)]


def walk(schema: Any, at: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema with its location."""
    if isinstance(schema, dict):
        yield at, schema
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from walk(sub, f"{at}/{key}/{name}")
            elif key in ("enum", "const", "required", "default", "examples"):
                continue
            else:
                yield from walk(value, f"{at}/{key}")
    elif isinstance(schema, list):
        for index, sub in enumerate(schema):
            yield from walk(sub, f"{at}/{index}")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- the schemas themselves


@pytest.mark.parametrize("kind", KINDS)
def test_each_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = load_schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description_for_hover_help(kind: str) -> None:
    missing = [
        f"{at}/properties/{name}"
        for at, sub in walk(load_schema(kind))
        for name, prop in sub.get("properties", {}).items()
        if "description" not in prop and at.split("/")[-1] not in ("then", "if")
    ]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS)
def test_schemas_use_only_keywords_draft_07_editors_understand(kind: str) -> None:
    for at, sub in walk(load_schema(kind)):
        assert set(sub) <= DRAFT_07_KEYWORDS, at
        if "$ref" in sub:
            # draft-07 tools ignore a $ref's siblings: only a description may stand there.
            assert set(sub) <= {"$ref", "description"}, at


def test_schema_enums_match_the_engine() -> None:
    slugs = [t.slug for t in TOPICS]
    lab, quiz, lesson = load_schema("lab"), load_schema("quiz"), load_schema("lesson")
    assert lab["$defs"]["topic"]["enum"] == slugs
    assert quiz["$defs"]["topic"]["enum"] == slugs
    assert lesson["properties"]["slug"]["enum"] == slugs
    assert quiz["$defs"]["question"]["properties"]["type"]["enum"] == list(QUESTION_TYPES)
    assert quiz["$defs"]["letter"]["enum"] == list(LETTERS)
    from sdtutor.services.base import KIND_NAMES

    assert lab["$defs"]["kind"]["enum"] == list(KIND_NAMES)


def test_the_schemas_are_plain_json_files_beside_the_module() -> None:
    for kind in KINDS:
        json.loads((SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the real course fits


@pytest.mark.parametrize(("kind", "path"), REAL, ids=[str(p.relative_to(REPO)) for _, p in REAL])
def test_every_course_file_fits_its_schema(kind: str, path: Path) -> None:
    assert validate(kind, parsed(kind, path), path) == []


def test_the_course_has_files_of_every_kind() -> None:
    assert {kind for kind, _ in REAL} == {"lab", "case", "quiz", "lesson"}


def test_a_lab_with_instances_replicas_setup_per_kind_and_limits_fits(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "lab.yaml",
        """\
format_version: 1
topic: replication-sharding
title: Read your writes
services:
  primary: postgres
  replica: {kind: postgres, replica_of: primary, settings: {hot_standby: on}}
  cache: redis
  bus: {kind: rabbitmq}
setup:
  primary: setup.sql
  cache: seed.redis
  bus: topology.yaml
workspace: [app.py, schema.sql]
apply: [schema.sql]
time_limit: 30.5
limits: {memory_mb: 256, processes: 16, output_bytes: 65536, cpu_seconds: 10}
resources:
  bus: {queues: [orders, orders.dead], exchanges: [orders]}
checks:
  - id: fresh-after-write
    title: A read after a write sees the write
hints: [Read from the primary right after a write.]
""",
    )
    assert validate("lab", read_yaml(path), path) == []
    listed = dict(read_yaml(path), services=["postgres", "redis", "rabbitmq"], setup={})
    assert validate("lab", listed, path) == []
    # The loader reads the same file the same way.
    lab = load_lab(tmp_path)
    assert [(i.name, i.kind, i.replica_of) for i in lab.instances] == [
        ("primary", "postgres", None),
        ("replica", "postgres", "primary"),
        ("cache", "redis", None),
        ("bus", "rabbitmq", None),
    ]
    assert lab.limits.memory_mb == 256


def test_the_limits_in_the_schema_are_the_engines() -> None:
    limits = load_schema("lab")["properties"]["limits"]["properties"]
    assert {name: prop["default"] for name, prop in limits.items()} == {
        name: f.default for name, f in Limits.__dataclass_fields__.items()
    }


# ---------------------------------------------------------------- broken files are refused


def test_a_check_without_an_id_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    text = LAB_YAML.replace("  - id: has-index\n    title:", "  - title:")
    path = write(tmp_path, "lab.yaml", text)
    line = text.splitlines().index("  - title: The index exists") + 1
    assert validate("lab", read_yaml(path), path) == [
        f"{path}:{line}: checks[0]: missing field 'id'"
    ]


def test_fields_of_the_wrong_type_are_refused(tmp_path: Path) -> None:
    text = (
        LAB_YAML.replace("workspace: [indexes.sql]", "workspace: indexes.sql")
        + "time_limit: soon\n"
    )
    path = write(tmp_path, "lab.yaml", text)
    found = validate("lab", read_yaml(path), path)
    assert f"{path}:7: workspace: must be a list, not text" in found
    assert any("time_limit: must be a number, not text" in p for p in found)
    assert len(found) == 2


def test_an_unknown_field_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "lab.yaml", LAB_YAML + "time-limit: 20\n")
    (problem,) = validate("lab", read_yaml(path), path)
    assert "unknown field 'time-limit'" in problem and "did you mean 'time_limit'?" in problem


def test_an_unknown_service_kind_is_named(tmp_path: Path) -> None:
    text = LAB_YAML.replace("services: [postgres]", "services: {db: postgres, cache: memcached}")
    path = write(tmp_path, "lab.yaml", text)
    (problem,) = validate("lab", read_yaml(path), path)
    assert problem == (
        f'{path}:4: services.cache: "memcached" is not one of: postgres, redis, rabbitmq'
    )


def test_services_of_the_wrong_shape_say_what_shapes_are_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "lab.yaml", LAB_YAML.replace("[postgres]", "postgres"))
    assert validate("lab", read_yaml(path), path) == [
        f"{path}:4: services: must be a list or a mapping, not text"
    ]


def test_an_instance_needs_a_kind(tmp_path: Path) -> None:
    text = LAB_YAML.replace("[postgres]", "{db: postgres, replica: {replica_of: db}}")
    path = write(tmp_path, "lab.yaml", text)
    assert [p.split(": ", 1)[1] for p in validate("lab", read_yaml(path), path)] == [
        "services.replica: missing field 'kind'"
    ]


QUIZ = """\
format_version: 1
topic: indexing
questions:
  - id: composite-order
    type: single
    prompt: Which one?
    choices: [first, second]
    answer: b
    explanation: Because the second is right.
  - id: plan-cost
    type: numeric
    prompt: How many?
    answer: 3
    tolerance: 0.5
    unit: rows
    explanation: Three.
"""


def test_a_valid_quiz_fits(tmp_path: Path) -> None:
    path = write(tmp_path, "quiz.yaml", QUIZ)
    assert validate("quiz", read_yaml(path), path) == []


def test_an_unknown_question_type_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "quiz.yaml", QUIZ.replace("type: single", "type: essay"))
    assert validate("quiz", read_yaml(path), path) == [
        f'{path}:5: questions[0] (composite-order).type: "essay" is not one of: '
        + ", ".join(QUESTION_TYPES)
    ]


def test_a_question_without_an_id_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "quiz.yaml", QUIZ.replace("  - id: plan-cost\n    type", "  - type"))
    assert validate("quiz", read_yaml(path), path) == [
        f"{path}:10: questions[1]: missing field 'id'"
    ]


def test_answers_must_fit_the_question_type(tmp_path: Path) -> None:
    text = QUIZ.replace("answer: b", "answer: [b]").replace("answer: 3", "answer: three")
    path = write(tmp_path, "quiz.yaml", text)
    assert validate("quiz", read_yaml(path), path) == [
        f"{path}:8: questions[0] (composite-order).answer: must be text, not a list",
        f"{path}:13: questions[1] (plan-cost).answer: must be a number, not text",
    ]


def test_numeric_extras_on_a_choice_question_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "quiz.yaml", QUIZ.replace("answer: b\n", "answer: b\n    unit: ms\n"))
    (problem,) = validate("quiz", read_yaml(path), path)
    assert problem.endswith("tolerance and unit belong to numeric questions only")


def test_bad_lesson_front_matter_is_refused(tmp_path: Path) -> None:
    lesson = (REPO / "lessons" / "07-indexing.md").read_text(encoding="utf-8")
    path = write(tmp_path, "07-indexing.md", lesson.replace("minutes: ", "minutes: 4", 1))
    found = validate("lesson", front_matter(path), path)
    assert len(found) == 1 and "minutes: must be at most 20" in found[0]


def test_a_case_that_names_no_check_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "case.yaml", "summary: Sorts in Python.\nfails: []\nsay: [sorts]\n")
    assert validate("case", read_yaml(path), path) == [
        f"{path}:2: fails: needs at least 1 item(s), has 0",
        f"{path}:3: say: unknown field 'say' (did you mean 'says'?)",
    ]


def test_plain_dicts_validate_too_without_lines() -> None:
    assert validate("case", {"summary": "x", "fails": ["Bad Id"]}, Path("case.yaml")) == [
        'case.yaml: fails[0]: "Bad Id" does not fit: lowercase-with-dashes: letters, digits '
        "and single dashes."
    ]


def test_an_unknown_kind_is_a_content_error() -> None:
    with pytest.raises(ContentError, match="no schema for 'labs'"):
        validate("labs", {}, Path("x"))


def test_without_jsonschema_validate_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    schemas._validator.cache_clear()
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    try:
        with pytest.raises(ContentError) as caught:
            validate("case", {}, Path("case.yaml"))
    finally:
        schemas._validator.cache_clear()
    assert "pip install" in caught.value.hint
