"""Calls the learner's auth.py many times in one process; runs in their sandbox.

The checks put this file into the sandbox's copy of the workspace, beside auth.py
(`ctx.run(..., files=...)`), so one process answers a whole batch of tokens or
permission questions instead of one process per question. Nothing here decides a
verdict: it reports what the learner's functions returned or raised, and the checks
judge that, with Redis read from outside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner


def _learner(name: str) -> Any:
    """The learner's module `name`, imported afresh from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(name))


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."


def _plain(value: Any) -> Any:
    """A JSON-safe copy of what the learner returned (a dict of claims, usually)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def verify_many(cache: Any, file: str, public_key: str, tokens: list[str]) -> list[Any]:
    """verify(cache, token, public_key) for each token: what it returned or raised."""
    return _verify_all(_learner(file), cache, public_key, tokens)


def _verify_all(module: Any, cache: Any, public_key: str, tokens: list[str]) -> list[Any]:
    answers: list[Any] = []
    for token in tokens:
        try:
            claims = module.verify(cache, token, public_key)
            answers.append({"accepted": True, "claims": _plain(claims)})
        except Exception as exc:  # any exception is a refusal
            answers.append({"accepted": False, "error": _error(exc)})
    return answers


def decide_many(file: str, questions: list[list[Any]]) -> list[Any]:
    """can(claims, action, post) for each question: True/False, or the error it raised."""
    module = _learner(file)
    answers: list[Any] = []
    for claims, action, post in questions:
        try:
            answers.append({"answer": _plain(module.can(claims, action, post))})
        except Exception as exc:
            answers.append({"error": _error(exc)})
    return answers


MARK = "sdtutor-auth-mark"
"""ECHOed between steps, so the checker can split the commands the proxy saw by step."""


def _step(call: Any) -> dict[str, Any]:
    try:
        call()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}


def revocation_story(
    cache: Any, file: str, public_key: str, tokens: dict[str, str]
) -> dict[str, Any]:
    """Verify A, B and C; revoke A, B and a forged token (each step marked on the wire);
    then verify A, A re-spelled, B and C again."""
    module = _learner(file)
    story: dict[str, Any] = {}
    story["before"] = _verify_all(module, cache, public_key, [tokens[k] for k in "ABC"])
    if not all(answer["accepted"] for answer in story["before"]):
        return story
    for name in ("A", "B", "forged"):
        cache.echo(f"{MARK} revoke {name}")
        story[f"revoke {name}"] = _step(lambda n=name: module.revoke(cache, tokens[n], public_key))
    cache.echo(f"{MARK} after")
    again = [tokens["A"], tokens["A"] + "==", tokens["B"], tokens["C"]]
    story["after"] = _verify_all(module, cache, public_key, again)
    return story
