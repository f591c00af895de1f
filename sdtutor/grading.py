"""Quiz grading: turn what the learner typed into an answer, and mark it.

Headless: the CLI and the TUI both use it.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass

from sdtutor.content.models import LETTERS, Question
from sdtutor.marks import PASS_MARK

KINDS = {
    "single": "one answer",
    "multiple": "one or more answers",
    "order": "put in order",
    "truefalse": "true or false",
    "numeric": "a number",
}
"""How each question type is named to the learner ("Question 3 of 16 (a number)")."""


class BadResponse(ValueError):
    """What the learner typed is not an answer of the right form; the message says why."""


@dataclass(frozen=True)
class Graded:
    """A marked answer."""

    question: Question
    response: str
    correct: bool

    @property
    def right_answer(self) -> str:
        """The correct answer, written out for the learner."""
        return describe_answer(self.question)


def _letters(text: str, count: int) -> list[str]:
    letters = [ch for ch in text.lower() if not ch.isspace() and ch not in ",;"]
    valid = LETTERS[:count]
    bad = [ch for ch in letters if ch not in valid]
    if bad or not letters:
        raise BadResponse(f"Type letters from {valid[0]} to {valid[-1]}.")
    return letters


def parse(question: Question, text: str) -> object:
    """The learner's typed response as a comparable answer; raises BadResponse."""
    text = text.strip()
    count = len(question.choices)
    if question.type == "single":
        letters = _letters(text, count)
        if len(letters) != 1:
            raise BadResponse("Choose one letter.")
        return letters[0]
    if question.type == "multiple":
        letters = _letters(text, count)
        if len(set(letters)) != len(letters):
            raise BadResponse("Name each letter once.")
        return frozenset(letters)
    if question.type == "order":
        letters = _letters(text, count)
        if sorted(letters) != list(LETTERS[:count]):
            raise BadResponse(
                f"Put all {count} letters in order, each once (e.g. {LETTERS[:count][::-1]})."
            )
        return tuple(letters)
    if question.type == "truefalse":
        value = text.lower()
        if value in ("t", "true", "y", "yes"):
            return True
        if value in ("f", "false", "n", "no"):
            return False
        raise BadResponse("Answer t (true) or f (false).")
    cleaned = text.replace(",", "").replace("_", "")
    if question.unit and cleaned.lower().endswith(question.unit.lower()):
        cleaned = cleaned[: -len(question.unit)].strip()
    try:
        number = float(cleaned)
    except ValueError:
        raise BadResponse("Type a number.") from None
    if not math.isfinite(number):
        raise BadResponse("Type a finite number.")
    return number


def is_correct(question: Question, answer: object) -> bool:
    """Whether a parsed answer is right (numeric within the question's tolerance)."""
    if question.type == "numeric":
        assert isinstance(answer, float)
        return abs(answer - float(question.answer)) <= question.tolerance + 1e-9
    return bool(answer == question.answer)


def grade(question: Question, text: str) -> Graded:
    """Parse and mark a response; raises BadResponse for a malformed one."""
    return Graded(question, text.strip(), is_correct(question, parse(question, text)))


def shuffled(question: Question, seed: object) -> Question:
    """The same question with its choices in an order fixed by `seed` (say the attempt id
    and the question id), the answer re-lettered to match: learners learn ideas, not
    positions. Everything else (parse, grade, describe_answer) works on the result as on
    the original, and the letters the learner sees are the ones graded. A question whose
    choices must keep their order (none today) would simply not be passed here."""
    if question.type not in ("single", "multiple", "order") or len(question.choices) < 2:
        return question
    order = list(range(len(question.choices)))
    random.Random(f"{seed}:{question.id}").shuffle(order)  # new index -> old index
    new_letter = {LETTERS[old]: LETTERS[new] for new, old in enumerate(order)}
    answer = question.answer
    if question.type == "single":
        answer = new_letter[answer]
    elif question.type == "multiple":
        answer = frozenset(new_letter[a] for a in answer)
    else:  # order: the same sequence of choices, under their new letters
        answer = tuple(new_letter[a] for a in answer)
    choices = tuple(question.choices[old] for old in order)
    return dataclasses.replace(question, choices=choices, answer=answer)


def _to_original(original: Question, shown: Question) -> dict[str, str]:
    """Each letter of `shown` (a shuffled copy of `original`) and the original's letter for
    the same choice."""
    unused = list(range(len(original.choices)))
    mapping: dict[str, str] = {}
    for new, text in enumerate(shown.choices):
        old = next(i for i in unused if original.choices[i] == text)
        unused.remove(old)
        mapping[LETTERS[new]] = LETTERS[old]
    return mapping


def original_letters(original: Question, shown: Question, response: str) -> str:
    """A response typed against `shown` (the result of `shuffled(original, ...)`) written
    in `original`'s letters, for records that are read against the quiz file. Characters
    that are not choice letters are kept as they are; non-choice questions are unchanged."""
    if shown.choices == original.choices:
        return response
    mapping = _to_original(original, shown)
    mapped = "".join(mapping.get(ch.lower(), ch) for ch in response)
    if original.type == "multiple" and mapped.isalpha():
        mapped = "".join(sorted(mapped))  # a set: in the file's letter order
    return mapped


# A choice named in prose: "(b)", "(a, d)", "(b and c)"; not "count(c)".
_LETTER_REFS = re.compile(r"(?<![\w(])\(([a-f](?:(?:, | and | or |, and )[a-f])*)\)")


def relettered(text: str, original: Question, shown: Question) -> str:
    """Prose written for `original` (its explanation) with the choices it names in
    parentheses, "(b)" or "(a, d)", under the letters of `shown` (a shuffled copy).
    Bare letters in running text ("skips b and d") cannot be told from words and are
    left as written."""
    if shown.choices == original.choices:
        return text
    to_shown = {old: new for new, old in _to_original(original, shown).items()}

    def swap(match: re.Match[str]) -> str:
        letters = re.findall(r"\b[a-f]\b", match.group(1))
        if not all(letter in to_shown for letter in letters):
            return match.group(0)  # names no choice of this question: not a reference
        return "(" + re.sub(r"\b[a-f]\b", lambda m: to_shown[m.group(0)], match.group(1)) + ")"

    return _LETTER_REFS.sub(swap, text)


def describe_answer(question: Question) -> str:
    """The right answer in words: letters with their choice text, a number, true/false."""
    answer = question.answer
    if question.type == "single":
        return f"{answer}) {question.choices[LETTERS.index(answer)]}"
    if question.type == "multiple":
        return "; ".join(f"{a}) {question.choices[LETTERS.index(a)]}" for a in sorted(answer))
    if question.type == "order":
        return " → ".join(f"{a}) {question.choices[LETTERS.index(a)]}" for a in answer)
    if question.type == "truefalse":
        return "true" if answer else "false"
    value = _number(answer)
    if question.tolerance:
        value += f" (± {_number(question.tolerance)})"
    return f"{value} {question.unit}".strip()


def _number(value: float) -> str:
    """A number as a person writes it: 15,625,000 or 61.5, never 1.5625e+07."""
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) < 0.001:
        return f"{value:g}"
    return f"{value:,.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Summary:
    """The end of a quiz: score, and what to re-read."""

    correct: int
    total: int
    missed_ideas: tuple[str, ...]
    sections: tuple[str, ...]

    @property
    def score(self) -> float:
        """Fraction correct."""
        return self.correct / self.total if self.total else 0.0


def summarise(results: list[Graded]) -> Summary:
    """Score the quiz and name the weakest ideas and the lesson sections to re-read."""
    missed = [g.question for g in results if not g.correct]
    ideas: dict[str, int] = {}
    sections: dict[str, int] = {}
    for q in missed:
        ideas[q.idea or q.id] = ideas.get(q.idea or q.id, 0) + 1
        if q.section:
            sections[q.section] = sections.get(q.section, 0) + 1
    return Summary(
        correct=sum(g.correct for g in results),
        total=len(results),
        missed_ideas=tuple(sorted(ideas, key=lambda k: -ideas[k])),
        sections=tuple(sorted(sections, key=lambda k: -sections[k])),
    )


__all__ = [
    "KINDS",
    "PASS_MARK",
    "BadResponse",
    "Graded",
    "Summary",
    "describe_answer",
    "grade",
    "is_correct",
    "original_letters",
    "parse",
    "relettered",
    "shuffled",
    "summarise",
]
