"""Calls the learner's flags.py and canary.py for the checks; runs in the learner's process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace, beside the learner's files. Nothing here judges: each
function hands back what the learner's code returned (one character per flag answer,
the decision as given), and the checks judge those answers in the checker's process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner


def _learner(name: str) -> Any:
    """The learner's module `name`, imported from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(name))


def _char(answer: Any) -> str:
    """'1' for True, '0' for False, '?' for anything that is not a bool (or 0/1)."""
    if answer is True or answer is False:
        return "1" if answer else "0"
    if isinstance(answer, int) and answer in (0, 1):
        return str(answer)
    return "?"


def flags(file: str, users: list[str], asks: list[list[Any]]) -> dict[str, Any]:
    """is_enabled(flag, user, percent) for every user, for each [flag, percent] asked.

    Returns {"answers": one string per ask, a character per user} and, when an answer
    was not a bool, {"odd": repr of the first one}. A call that raises ends the run
    with {"error": ..., "ask": [flag, percent], "user": ...}.
    """
    is_enabled = _learner(file).is_enabled
    answers: list[str] = []
    odd = None
    for flag, percent in asks:
        chars = []
        for user in users:
            try:
                answer = is_enabled(flag, user, percent)
            except Exception as exc:
                return {
                    "error": f"{type(exc).__name__}: {exc}",
                    "ask": [flag, percent],
                    "user": user,
                }
            char = _char(answer)
            if char == "?" and odd is None:
                odd = f"is_enabled({flag!r}, {user!r}, {percent!r}) returned {answer!r}"
            chars.append(char)
        answers.append("".join(chars))
    return {"answers": answers, "odd": odd}


def decide(file: str, runs: list[list[dict[str, Any]]]) -> list[str]:
    """decide(baseline, canary) for each recorded run: the answer as given.

    A run whose call raises gets "raised ..." instead, and an answer that is not a
    string "returned ..." (the checks tell these from the three decisions).
    """
    decide = _learner(file).decide
    out = []
    for baseline, canary in runs:
        try:
            answer = decide(dict(baseline), dict(canary))
        except Exception as exc:
            out.append(f"raised {type(exc).__name__}: {exc}"[:200])
            continue
        out.append(answer[:200] if isinstance(answer, str) else f"returned {answer!r}"[:200])
    return out
