"""JSON Schemas of the course files, for editors and for the linter.

`lab.schema.json`, `quiz.schema.json`, `lesson-front-matter.schema.json` and
`case.schema.json` (draft 2020-12) sit beside this module; README.md here says how to
point an editor at them. `validate()` checks parsed YAML against one and words each
problem for an author: where it is (file, line, field path) and what to change.

Needs the `jsonschema` package (a dependency of sdtutor), imported on first use so that
commands which never check course files do not pay for it.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdtutor.errors import ContentError

if TYPE_CHECKING:
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_FILES: dict[str, str] = {
    "lab": "lab.schema.json",
    "quiz": "quiz.schema.json",
    "lesson": "lesson-front-matter.schema.json",
    "lesson-front-matter": "lesson-front-matter.schema.json",
    "case": "case.schema.json",
}
"""Kinds of course file, and their schema files."""

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


@dataclass(frozen=True)
class SchemaProblem:
    """One way a course file breaks its schema."""

    where: str
    """The field, as a path: `checks[0].id`; empty for the whole file."""
    line: int
    """The line in the file, when the data came from the loader (which records lines); else 0."""
    message: str

    def format(self, path: Path | str) -> str:
        """`path:line: where: message`, the way the linter prints problems."""
        location = f"{path}:{self.line}" if self.line else str(path)
        where = f"{self.where}: " if self.where else ""
        return f"{location}: {where}{self.message}"


def schema_path(kind: str) -> Path:
    """The schema file for a kind of course file; raises ContentError for an unknown kind."""
    try:
        return SCHEMA_DIR / SCHEMA_FILES[kind]
    except KeyError:
        raise ContentError(
            f"There is no schema for '{kind}'.",
            f"Schemas exist for: {', '.join(SCHEMA_FILES)}.",
        ) from None


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The parsed schema for a kind of course file."""
    schema: dict[str, Any] = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    return schema


@cache
def _validator(kind: str) -> Validator:
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        raise ContentError(
            "Checking course files against their schemas needs the jsonschema package.",
            "sdtutor depends on it: reinstall sdtutor, or pip install 'jsonschema>=4.18'.",
        ) from None
    validator: Validator = Draft202012Validator(load_schema(kind))
    return validator


def problems(kind: str, data: object) -> list[SchemaProblem]:
    """Every way `data` (a parsed course file) breaks the schema of `kind`, in file order."""
    leaves = [leaf for error in _validator(kind).iter_errors(data) for leaf in _leaves(error)]
    # A value of the wrong type also breaks its enum or pattern: say only the type.
    mistyped = {tuple(e.absolute_path) for e in leaves if e.validator == "type"}
    found: dict[tuple[str, str], SchemaProblem] = {}
    for leaf in leaves:
        if leaf.validator != "type" and tuple(leaf.absolute_path) in mistyped:
            continue
        for problem in _describe(leaf, data, load_schema(kind)):
            found.setdefault((problem.where, problem.message), problem)
    return sorted(found.values(), key=lambda p: (p.line, p.where, p.message))


def validate(kind: str, data: object, path: Path) -> list[str]:
    """Readable problems of `data` against the schema of `kind`, each `path:line: field: what`.

    `kind` is lab, quiz, lesson (or lesson-front-matter) or case; `data` is the parsed
    YAML (the loader's mappings carry line numbers, which the messages then include).
    An empty list means the data fits. Raises ContentError if jsonschema is missing.
    """
    return [problem.format(path) for problem in problems(kind, data)]


# ---------------------------------------------------------------- wording


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The errors worth showing: inside oneOf/anyOf, those of the branch the data meant."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    # A branch whose type the data does not even have was not the one the author meant.
    meant = [
        subs
        for subs in branches.values()
        if not any(s.validator == "type" and not s.relative_path for s in subs)
    ]
    if not meant:
        return [error]
    best = min(meant, key=len)
    return [leaf for sub in best for leaf in _leaves(sub)]


def _where(path: list[str | int], data: object) -> tuple[str, int]:
    """A path like `questions[3] (composite-order).answer`, and the line it points at."""
    where = ""
    line = getattr(data, "line", 0)
    node: Any = data
    for step in path:
        if isinstance(step, int):
            where += f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            if isinstance(node, dict):
                line = getattr(node, "line", 0) or line
                if isinstance(node.get("id"), str):
                    where += f" ({node['id']})"
        else:
            where += f".{step}" if where else step
            if isinstance(node, dict):
                line = getattr(node, "key_lines", {}).get(step, 0) or line
                node = node.get(step)
            else:
                node = None
    return where, line


def _shown(value: object) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _found(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    for python_type, word in (
        (dict, "a mapping"),
        (list, "a list"),
        (str, "text"),
        (int, "a whole number"),
        (float, "a number"),
    ):
        if isinstance(value, python_type):
            return word
    return "empty" if value is None else type(value).__name__


def _types(schema: Any, root: dict[str, Any]) -> list[str]:
    """The type words a schema (or the branches of a oneOf/anyOf) accepts."""
    if not isinstance(schema, dict):
        return []
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _types(root.get("$defs", {}).get(ref.removeprefix("#/$defs/")), root)
    declared = schema.get("type")
    if isinstance(declared, str | list):
        names = [declared] if isinstance(declared, str) else declared
        return [_TYPE_WORDS.get(str(name), str(name)) for name in names]
    branches: list[Any] = schema.get("oneOf") or schema.get("anyOf") or []
    return [w for branch in branches for w in _types(branch, root)]


def _describe(error: ValidationError, data: object, root: dict[str, Any]) -> list[SchemaProblem]:
    """One or more problems for one validation error, worded for a course author."""
    path = list(error.absolute_path)
    where, line = _where(path, data)
    value = error.instance
    rule = error.validator
    expected = error.validator_value
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    messages: list[tuple[str, str, int]] = []

    def say(message: str, field: str = "") -> None:
        if field:
            sub_where, sub_line = _where([*path, field], data)
            messages.append((sub_where, message, sub_line))
        else:
            messages.append((where, message, line))

    if rule == "required":
        for name in expected:
            if isinstance(value, dict) and name not in value:
                say(f"missing field '{name}'")
    elif rule == "additionalProperties" and isinstance(value, dict):
        known = list(schema.get("properties", {}))
        for name in value:
            if name in known:
                continue
            close = difflib.get_close_matches(str(name), known, n=1)
            tip = f"did you mean '{close[0]}'?" if close else f"fields here: {', '.join(known)}"
            say(f"unknown field '{name}' ({tip})", str(name))
    elif rule == "type" or (rule in ("oneOf", "anyOf") and _types(schema, root)):
        words = _types({"type": expected} if rule == "type" else schema, root)
        say(f"must be {' or '.join(words)}, not {_found(value)}")
    elif rule == "enum":
        say(f"{_shown(value)} is not one of: {', '.join(str(v) for v in expected)}")
    elif rule == "const":
        say(f"must be {_shown(expected)}, not {_shown(value)}")
    elif rule == "pattern":
        rule_text = schema.get("description") or f"the pattern {expected}"
        say(f"{_shown(value)} does not fit: {rule_text}")
    elif rule == "not" and isinstance(expected, dict) and expected.get("description"):
        say(str(expected["description"]))
    elif rule in ("minItems", "maxItems"):
        bound = "at least" if rule == "minItems" else "at most"
        say(f"needs {bound} {expected} item(s), has {len(value)}")
    elif rule in ("minProperties", "minLength") and expected == 1:
        say("must not be empty")
    elif rule == "uniqueItems":
        twice = next((v for i, v in enumerate(value) if v in value[:i]), None)
        say(f"lists {_shown(twice)} more than once")
    elif rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        limit = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "above",
            "exclusiveMaximum": "below",
        }[rule]
        say(f"must be {limit} {expected}, not {_shown(value)}")
    else:
        say(_plain(error.message))
    return [SchemaProblem(w, n, m) for w, m, n in messages]


def _plain(message: str) -> str:
    """jsonschema's own wording, with long echoed values cut short."""
    return re.sub(r"\{.{60,}?\}", "{...}", message)


__all__ = [
    "SCHEMA_DIR",
    "SCHEMA_FILES",
    "SchemaProblem",
    "load_schema",
    "problems",
    "schema_path",
    "validate",
]
