"""Typed models of the course files. Built only by `loader.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

QuestionType = Literal["single", "multiple", "numeric", "order", "truefalse"]
QUESTION_TYPES: tuple[str, ...] = ("single", "multiple", "numeric", "order", "truefalse")
LETTERS = "abcdef"


@dataclass(frozen=True)
class Section:
    """One `## ` section of a lesson."""

    heading: str
    body: str
    line: int


@dataclass(frozen=True)
class Lesson:
    """A lesson: front matter and its sections, in order."""

    path: Path
    number: int
    slug: str
    title: str
    summary: str
    minutes: int
    objectives: tuple[str, ...]
    intro: str
    sections: tuple[Section, ...]

    def section(self, heading: str) -> Section | None:
        """The section with this heading, if the lesson has it."""
        for s in self.sections:
            if s.heading.lower() == heading.lower():
                return s
        return None


@dataclass(frozen=True)
class Question:
    """One quiz question. `answer` is normalised by the loader (see content-format.md)."""

    id: str
    type: QuestionType
    prompt: str
    explanation: str
    choices: tuple[str, ...] = ()
    answer: Any = None
    tolerance: float = 0.0
    unit: str = ""
    idea: str = ""
    section: str = ""
    scenario: bool = False
    line: int = 0


@dataclass(frozen=True)
class Quiz:
    """A topic's quiz."""

    path: Path
    topic: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class CheckSpec:
    """A check a lab declares; its code lives in the lab's checks.py."""

    id: str
    title: str


@dataclass(frozen=True)
class WrongCase:
    """A plausible but wrong solution that must fail, and what its failure must say."""

    name: str
    path: Path
    summary: str
    fails: tuple[str, ...]
    says: tuple[str, ...]


@dataclass(frozen=True)
class InstanceSpec:
    """One server a lab needs: its name in the lab, its kind, and what it copies."""

    name: str
    kind: str
    replica_of: str | None = None
    """A streaming replica of this other instance (same kind), when set."""
    settings: dict[str, str] = field(default_factory=dict)
    """Server settings the lab needs (e.g. PostgreSQL's max_prepared_transactions)."""
    roles: tuple[str, ...] = ()
    """Extra NOLOGIN roles (PostgreSQL) the lab makes beside its login: short names."""


@dataclass(frozen=True)
class Limits:
    """Bounds on learner code run by the checks (see sdtutor.lab.runner)."""

    memory_mb: int = 1024
    processes: int = 64
    output_bytes: int = 65536
    cpu_seconds: int = 60


@dataclass(frozen=True)
class LabSpec:
    """A lab: its service instances, setup, workspace, checks and hints."""

    path: Path
    topic: str
    title: str
    instances: tuple[InstanceSpec, ...]
    setup: dict[str, str]
    workspace: tuple[str, ...]
    apply: tuple[str, ...]
    checks: tuple[CheckSpec, ...]
    hints: tuple[str, ...]
    time_limit: float = 20.0
    limits: Limits = field(default_factory=Limits)
    resources: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    """Per instance, names the lab's learner code makes (RabbitMQ: queues, exchanges), for
    servers where sdtutor cannot list them and must know what to remove."""

    @property
    def services(self) -> tuple[str, ...]:
        """The kinds of server the lab needs, each once, in order."""
        return tuple(dict.fromkeys(i.kind for i in self.instances))

    def instance(self, name: str) -> InstanceSpec:
        """The instance with this name; KeyError if the lab has none."""
        for spec in self.instances:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @cached_property
    def wrong(self) -> tuple[WrongCase, ...]:
        """The wrong/ cases, read when first asked (a learner's commands never ask; a
        broken case.yaml is a ContentError naming file and line)."""
        from sdtutor.content.loader import load_wrong_cases

        return load_wrong_cases(self.path)

    @property
    def readme(self) -> Path:
        """The task as the learner reads it."""
        return self.path / "README.md"

    @property
    def starter(self) -> Path:
        """The workspace's starting files."""
        return self.path / "starter"

    @property
    def solution(self) -> Path:
        """The reference solution (a workspace overlay)."""
        return self.path / "solution"

    @property
    def checks_file(self) -> Path:
        """The lab's checks module."""
        return self.path / "checks.py"


__all__ = [
    "LETTERS",
    "QUESTION_TYPES",
    "CheckSpec",
    "InstanceSpec",
    "LabSpec",
    "Lesson",
    "Limits",
    "Question",
    "QuestionType",
    "Quiz",
    "Section",
    "WrongCase",
]
