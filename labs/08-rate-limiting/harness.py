"""Calls the learner's limiter.py the way the API's app servers would; runs in their process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace beside limiter.py: a batch of calls costs one process
rather than one each, and a crowd of callers is a few processes (app servers) of several
threads each (their request handlers), each thread on a connection of its own. Nothing
here decides a verdict: it returns what limiter.py returned, and the checks judge those
answers against each other and against the keys in Redis and the commands the proxy saw.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner

FILE = "limiter.py"


def _learner() -> Any:
    """The learner's limiter.py, imported afresh from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(FILE))


def _plain(value: Any) -> Any:
    """A return value as JSON can carry it (a tuple becomes a list, bytes become text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def allow_many(r: Any, calls: list[list[Any]]) -> list[Any]:
    """allow(r, key, limit, window, now) for each [key, limit, window, now], in order."""
    module = _learner()
    return [_plain(module.allow(r, key, limit, window, now)) for key, limit, window, now in calls]


def take_many(r: Any, calls: list[list[Any]]) -> list[Any]:
    """take_token(r, key, capacity, rate, now) for each [key, capacity, rate, now]."""
    module = _learner()
    return [
        _plain(module.take_token(r, key, capacity, rate, now)) for key, capacity, rate, now in calls
    ]


def both(r: Any, allow_calls: list[list[Any]], take_calls: list[list[Any]]) -> list[Any]:
    """allow_many and take_many in one process: [allow's answers, take_token's answers]."""
    return [allow_many(r, allow_calls), take_many(r, take_calls)]


def crowd(r: Any, function: str, calls: list[list[Any]]) -> list[Any]:
    """Each call on a thread of its own, released together; the answers in call order.

    `function` is "allow" or "take_token". redis-py gives each thread that runs a command
    at the same time a connection of its own from the client's pool.
    """
    module = _learner()
    call = getattr(module, function)
    start = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            start.wait(timeout=30)
            answers[n] = _plain(call(r, *calls[n]))
        except BaseException as exc:  # handed to the main thread, which raises it
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return answers
