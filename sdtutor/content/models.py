"""Typed models of the course files. Built only by `loader.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
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
class LabSpec:
    """A lab: its services, setup, workspace, checks and hints."""

    path: Path
    topic: str
    title: str
    services: tuple[str, ...]
    setup: dict[str, str]
    workspace: tuple[str, ...]
    apply: tuple[str, ...]
    checks: tuple[CheckSpec, ...]
    hints: tuple[str, ...]
    wrong: tuple[WrongCase, ...] = field(default=())
    time_limit: float = 20.0

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
    "LabSpec",
    "Lesson",
    "Question",
    "QuestionType",
    "Quiz",
    "Section",
    "WrongCase",
]
