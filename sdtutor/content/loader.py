"""The one reader of course files: lessons, quizzes and labs, into typed models.

Every error names the file and the line, so an author can go straight to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdtutor.content.models import (
    LETTERS,
    QUESTION_TYPES,
    CheckSpec,
    InstanceSpec,
    LabSpec,
    Lesson,
    Limits,
    Question,
    Quiz,
    Section,
    WrongCase,
)
from sdtutor.errors import ContentError

FORMAT_VERSION = 1
LESSON_SECTIONS = (
    "Why it matters",
    "Mental model",
    "How it works",
    "Trade-offs",
    "In the wild",
    "How to decide",
    "Pitfalls",
    "Go deeper",
    "The lab",
)


class LineDict(dict[str, Any]):
    """A YAML mapping that remembers where it and each of its keys stand."""

    line: int = 0
    key_lines: dict[str, int]


_LOADER: Any = None


def _line_loader() -> Any:
    """The YAML loader that records line numbers (built on first use: yaml is slow to
    import, and `sdtutor list` never reads YAML)."""
    global _LOADER
    if _LOADER is None:
        import yaml

        # libyaml's parser when the wheel has it (several times faster); same semantics.
        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class LineLoader(base):  # type: ignore[valid-type, misc]
            def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
                mapping = super().construct_mapping(node, deep=True)
                data = LineDict({str(k): v for k, v in mapping.items()})
                data.line = node.start_mark.line + 1
                data.key_lines = {
                    str(k.value): k.start_mark.line + 1
                    for k, _ in node.value
                    if hasattr(k, "value")
                }
                return data

        LineLoader.add_constructor(
            yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, LineLoader.construct_mapping
        )
        _LOADER = LineLoader
    return _LOADER


def read_yaml(path: Path, text: str | None = None, line_offset: int = 0) -> Any:
    """Parse YAML, turning syntax errors into ContentError with file and line."""
    if text is None:
        text = _read_text(path)
    import yaml

    try:
        return yaml.load(text, Loader=_line_loader())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line + 1 if mark else 1) + line_offset
        problem = exc.problem or str(exc)
        raise ContentError(
            f"not valid YAML: {problem}",
            "Check the indentation and quoting on that line.",
            path=str(path),
            line=line,
        ) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError("file not found", path=str(path)) from None
    except UnicodeDecodeError:
        raise ContentError("not UTF-8 text", path=str(path), line=1) from None


@dataclass
class _Ctx:
    """Helps a model builder say where a problem is."""

    path: Path

    def fail(self, message: str, line: int = 1, hint: str = "") -> ContentError:
        return ContentError(message, hint, path=str(self.path), line=line)

    def require(self, data: LineDict, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in data:
            raise self.fail(f"missing field '{key}'", data.line)
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(f"field '{key}' must be {names}", data.key_lines.get(key, data.line))
        return value

    def mapping(self, data: Any, what: str, line: int = 1) -> LineDict:
        if not isinstance(data, LineDict):
            raise self.fail(f"{what} must be a mapping", line)
        return data

    def version(self, data: LineDict) -> None:
        version = self.require(data, "format_version", int)
        if version != FORMAT_VERSION:
            raise self.fail(
                f"format_version {version} is not supported (this sdtutor reads {FORMAT_VERSION})",
                data.key_lines["format_version"],
                "Upgrade sdtutor, or write the file in format_version 1.",
            )


# ---------------------------------------------------------------- lessons


def load_lesson(path: Path) -> Lesson:
    """Parse a lesson file: front matter, intro, and its `## ` sections."""
    text = _read_text(path)
    ctx = _Ctx(path)
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ctx.fail("a lesson starts with YAML front matter between two '---' lines", 1)
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ctx.fail("front matter is not closed with a '---' line", 1) from None
    meta = ctx.mapping(read_yaml(path, "\n".join(lines[1:end]), line_offset=1), "front matter", 1)
    for key_line in meta.key_lines:
        meta.key_lines[key_line] += 1
    meta.line += 1
    ctx.version(meta)
    objectives = ctx.require(meta, "objectives", list)
    if not objectives or not all(isinstance(o, str) for o in objectives):
        raise ctx.fail("objectives must be a list of sentences", meta.key_lines["objectives"])

    intro: list[str] = []
    sections: list[Section] = []
    heading: str | None = None
    start = 0
    body: list[str] = []
    in_code = False
    opened = 0
    for number, line in enumerate(lines[end + 1 :], start=end + 2):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            opened = number
        if not in_code and line.startswith("## "):
            if heading is not None:
                sections.append(Section(heading, "\n".join(body).strip(), start))
            heading, start, body = line[3:].strip(), number, []
            continue
        (body if heading is not None else intro).append(line)
    if in_code:
        raise ctx.fail("this code block is opened with ``` and never closed", opened)
    if heading is not None:
        sections.append(Section(heading, "\n".join(body).strip(), start))
    return Lesson(
        path=path,
        number=ctx.require(meta, "number", int),
        slug=ctx.require(meta, "slug", str),
        title=ctx.require(meta, "title", str),
        summary=ctx.require(meta, "summary", str),
        minutes=ctx.require(meta, "minutes", int),
        objectives=tuple(objectives),
        intro="\n".join(intro).strip(),
        sections=tuple(sections),
    )


# ---------------------------------------------------------------- quizzes


def _letters(ctx: _Ctx, value: Any, count: int, line: int) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        letter = str(item).strip().lower()
        if len(letter) != 1 or letter not in LETTERS[:count]:
            raise ctx.fail(
                f"answer '{item}' is not one of the choice letters {LETTERS[:count]}", line
            )
        out.append(letter)
    return out


def _question(ctx: _Ctx, raw: Any, fallback_line: int) -> Question:
    q = ctx.mapping(raw, "a question", fallback_line)
    qid = ctx.require(q, "id", str)
    qtype = ctx.require(q, "type", str)
    if qtype not in QUESTION_TYPES:
        raise ctx.fail(
            f"question '{qid}': type '{qtype}' is not one of {', '.join(QUESTION_TYPES)}",
            q.key_lines.get("type", q.line),
        )
    prompt = ctx.require(q, "prompt", str).strip()
    explanation = ctx.require(q, "explanation", str).strip()
    if "answer" not in q:
        raise ctx.fail(f"question '{qid}' has no answer", q.line)
    answer_line = q.key_lines.get("answer", q.line)
    raw_answer = q["answer"]
    choices: tuple[str, ...] = ()
    tolerance = 0.0
    if qtype in ("single", "multiple", "order"):
        raw_choices = ctx.require(q, "choices", list)
        choices = tuple(str(c).strip() for c in raw_choices)
        low = 3 if qtype == "order" else 2
        if not low <= len(choices) <= len(LETTERS):
            raise ctx.fail(
                f"question '{qid}' needs {low} to {len(LETTERS)} choices, has {len(choices)}",
                q.key_lines["choices"],
            )
    if qtype == "single":
        if isinstance(raw_answer, list):
            raise ctx.fail(f"question '{qid}' is single choice: answer is one letter", answer_line)
        answer: Any = _letters(ctx, raw_answer, len(choices), answer_line)[0]
    elif qtype == "multiple":
        letters = _letters(ctx, raw_answer, len(choices), answer_line)
        if not letters:
            raise ctx.fail(f"question '{qid}': name at least one right letter", answer_line)
        if len(set(letters)) != len(letters):
            raise ctx.fail(f"question '{qid}': a letter is repeated in the answer", answer_line)
        answer = frozenset(letters)
    elif qtype == "order":
        letters = _letters(ctx, raw_answer, len(choices), answer_line)
        if sorted(letters) != list(LETTERS[: len(choices)]):
            raise ctx.fail(
                f"question '{qid}': an order answer lists every choice letter exactly once",
                answer_line,
            )
        answer = tuple(letters)
    elif qtype == "truefalse":
        if not isinstance(raw_answer, bool):
            raise ctx.fail(f"question '{qid}': answer must be true or false", answer_line)
        answer = raw_answer
    else:
        if isinstance(raw_answer, bool) or not isinstance(raw_answer, int | float):
            raise ctx.fail(f"question '{qid}': a numeric answer must be a number", answer_line)
        answer = float(raw_answer)
        tol = q.get("tolerance", 0)
        if isinstance(tol, bool) or not isinstance(tol, int | float) or tol < 0:
            raise ctx.fail(
                f"question '{qid}': tolerance must be a number >= 0",
                q.key_lines.get("tolerance", q.line),
            )
        tolerance = float(tol)
    return Question(
        id=qid,
        type=qtype,
        prompt=prompt,
        explanation=explanation,
        choices=choices,
        answer=answer,
        tolerance=tolerance,
        unit=str(q.get("unit", "")),
        idea=str(q.get("idea", "")),
        section=str(q.get("section", "")),
        scenario=bool(q.get("scenario", False)),
        line=q.line,
    )


def load_quiz(path: Path) -> Quiz:
    """Parse and validate a quiz file."""
    ctx = _Ctx(path)
    data = ctx.mapping(read_yaml(path), "a quiz file")
    ctx.version(data)
    topic = ctx.require(data, "topic", str)
    raw_questions = ctx.require(data, "questions", list)
    if not raw_questions:
        raise ctx.fail("a quiz needs at least one question", data.key_lines["questions"])
    questions = []
    seen: dict[str, int] = {}
    for raw in raw_questions:
        q = _question(ctx, raw, data.key_lines["questions"])
        if q.id in seen:
            raise ctx.fail(
                f"question id '{q.id}' is used twice (first at line {seen[q.id]})", q.line
            )
        seen[q.id] = q.line
        questions.append(q)
    return Quiz(path=path, topic=topic, questions=tuple(questions))


# ---------------------------------------------------------------- labs


def _str_list(
    ctx: _Ctx, data: LineDict, key: str, default: list[str] | None = None
) -> tuple[str, ...]:
    if key not in data and default is not None:
        return tuple(default)
    value = ctx.require(data, key, list)
    if not all(isinstance(v, str) for v in value):
        raise ctx.fail(f"every item of '{key}' must be text", data.key_lines.get(key, data.line))
    return tuple(value)


def load_wrong_cases(lab_dir: Path) -> tuple[WrongCase, ...]:
    """A lab's wrong/ cases, each from its case.yaml (LabSpec.wrong reads them)."""
    cases = []
    wrong_dir = lab_dir / "wrong"
    if not wrong_dir.is_dir():
        return ()
    for case_dir in sorted(p for p in wrong_dir.iterdir() if p.is_dir()):
        case_file = case_dir / "case.yaml"
        cctx = _Ctx(case_file)
        data = cctx.mapping(read_yaml(case_file), "case.yaml")
        fails = _str_list(cctx, data, "fails")
        if not fails:
            raise cctx.fail("'fails' names at least one check id", data.key_lines["fails"])
        cases.append(
            WrongCase(
                name=case_dir.name,
                path=case_dir,
                summary=cctx.require(data, "summary", str),
                fails=fails,
                says=_str_list(cctx, data, "says", []),
            )
        )
    return tuple(cases)


KINDS = ("postgres", "redis", "rabbitmq")


def _instances(ctx: _Ctx, data: LineDict) -> tuple[InstanceSpec, ...]:
    """`services:` as a list of kinds, or a mapping of instance names to kinds."""
    line = data.key_lines.get("services", data.line)
    raw = data.get("services")
    if isinstance(raw, list):
        raw = {str(k): k for k in raw}
    if not isinstance(raw, dict):
        raise ctx.fail(
            "'services' lists the lab's servers: [postgres, redis], a mapping such as "
            "{primary: postgres, replica: {kind: postgres, replica_of: primary}}, or [] "
            "for a lab whose checks need no server",
            line,
        )
    instances = []
    for name, value in raw.items():
        spec = value if isinstance(value, dict) else {"kind": value}
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ctx.fail(
                f"service '{name}' has kind {kind!r}; the kinds are {', '.join(KINDS)}", line
            )
        replica_of = spec.get("replica_of")
        if replica_of is not None and (replica_of not in raw or _kind_of(raw[replica_of]) != kind):
            raise ctx.fail(
                f"service '{name}' is a replica of {replica_of!r}, which is not a {kind} "
                "service of this lab",
                line,
            )
        settings = spec.get("settings") or {}
        if not isinstance(settings, dict):
            raise ctx.fail(f"the settings of service '{name}' must be a mapping", line)
        instances.append(
            InstanceSpec(
                str(name),
                str(kind),
                str(replica_of) if replica_of else None,
                {str(k): str(v) for k, v in settings.items()},
                _roles(ctx, str(name), str(kind), spec.get("roles"), replica_of, line),
            )
        )
    return tuple(instances)


_ROLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,11}\Z")


def _roles(
    ctx: _Ctx, name: str, kind: str, raw: object, replica_of: object, line: int
) -> tuple[str, ...]:
    """An instance's extra PostgreSQL roles (`roles: [reporting]`): short, unique names."""
    if raw is None:
        return ()
    if kind != "postgres" or replica_of is not None:
        raise ctx.fail(
            f"service '{name}' lists roles, which only a postgres service that is not a "
            "replica can have",
            line,
        )
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise ctx.fail(f"the roles of service '{name}' are a list of names: [reporting]", line)
    bad = [r for r in raw if not _ROLE_NAME.match(r)]
    if bad or len(set(raw)) != len(raw):
        raise ctx.fail(
            f"the roles of service '{name}' must be distinct names of lowercase letters, "
            f"digits and '_', starting with a letter, at most 12 long (not {bad or raw})",
            line,
        )
    return tuple(raw)


def _kind_of(value: object) -> object:
    return value.get("kind") if isinstance(value, dict) else value


def _limits(ctx: _Ctx, data: LineDict) -> Limits:
    raw = data.get("limits") or {}
    line = data.key_lines.get("limits", data.line)
    if not isinstance(raw, dict):
        raise ctx.fail(
            "'limits' is a mapping (memory_mb, processes, output_bytes, cpu_seconds)", line
        )
    known = set(Limits.__dataclass_fields__)
    for key, value in raw.items():
        if key not in known:
            raise ctx.fail(
                f"unknown limit '{key}'; the limits are {', '.join(sorted(known))}", line
            )
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ctx.fail(f"limit '{key}' must be a whole number above 0", line)
    return Limits(**{str(k): int(v) for k, v in raw.items()})


def _resources(
    ctx: _Ctx, data: LineDict, instances: tuple[InstanceSpec, ...]
) -> dict[str, dict[str, tuple[str, ...]]]:
    raw = data.get("resources") or {}
    line = data.key_lines.get("resources", data.line)
    names = {i.name for i in instances}
    if not isinstance(raw, dict) or not set(raw) <= names:
        raise ctx.fail("'resources' maps service names of this lab to the names they use", line)
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for instance, groups in raw.items():
        if not isinstance(groups, dict) or not all(
            isinstance(v, list) and all(isinstance(n, str) for n in v) for v in groups.values()
        ):
            raise ctx.fail(f"resources of '{instance}' map kinds of thing to lists of names", line)
        out[str(instance)] = {str(k): tuple(v) for k, v in groups.items()}
    return out


def load_lab(lab_dir: Path) -> LabSpec:
    """Parse a lab folder's lab.yaml (its wrong/ cases are read when first asked)."""
    path = lab_dir / "lab.yaml"
    ctx = _Ctx(path)
    data = ctx.mapping(read_yaml(path), "lab.yaml")
    ctx.version(data)
    setup = ctx.require(data, "setup", dict)
    checks = []
    for raw in ctx.require(data, "checks", list):
        c = ctx.mapping(raw, "a check", data.key_lines["checks"])
        checks.append(CheckSpec(ctx.require(c, "id", str), ctx.require(c, "title", str)))
    ids = [c.id for c in checks]
    if len(set(ids)) != len(ids):
        raise ctx.fail("check ids must be unique", data.key_lines["checks"])
    time_limit = data.get("time_limit", 20)
    if isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or time_limit <= 0:
        raise ctx.fail(
            "time_limit must be a number of seconds above 0",
            data.key_lines.get("time_limit", data.line),
        )
    instances = _instances(ctx, data)
    unknown = [k for k in setup if k not in {i.name for i in instances}]
    if unknown:
        raise ctx.fail(
            f"setup names {', '.join(map(str, unknown))}, which is not one of the lab's "
            f"services ({', '.join(i.name for i in instances)})",
            data.key_lines.get("setup", data.line),
        )
    return LabSpec(
        path=lab_dir,
        topic=ctx.require(data, "topic", str),
        title=ctx.require(data, "title", str),
        instances=instances,
        setup={str(k): str(v) for k, v in setup.items()},
        workspace=_str_list(ctx, data, "workspace"),
        apply=_str_list(ctx, data, "apply", []),
        checks=tuple(checks),
        hints=_str_list(ctx, data, "hints"),
        time_limit=float(time_limit),
        limits=_limits(ctx, data),
        resources=_resources(ctx, data, instances),
    )


__all__ = [
    "FORMAT_VERSION",
    "LESSON_SECTIONS",
    "load_lab",
    "load_lesson",
    "load_quiz",
    "load_wrong_cases",
    "read_yaml",
]
