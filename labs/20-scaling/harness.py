"""Drives the learner's CircuitBreaker with a fake clock; runs in their process.

The check runs `scenario` through the runner, which puts this file into the sandbox's
copy of the workspace. Nothing here decides a verdict: each step reports how many times
the dependency was really called and what each caller got back, and the check compares
that with what a breaker must do.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner


class DependencyDown(Exception):
    """What the fake dependency raises when it fails."""


class Clock:
    """A clock that moves only when the scenario says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """Counts every call that reaches it; fails or answers as told."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.failing:
            raise DependencyDown("the dependency is down")
        return "fresh answer"


def _outcome(breaker: Any, dep: Dependency) -> str:
    """One call through the breaker: 'ok', 'dependency-error' or 'refused: <error>'."""
    try:
        value = breaker.call(dep)
    except DependencyDown:
        return "dependency-error"
    except Exception as exc:
        return f"refused: {type(exc).__name__}"
    return "ok" if value == "fresh answer" else f"returned {value!r}"


def scenario(file: str, threshold: int, cooldown: float, callers: int) -> list[dict[str, Any]]:
    """Steps of one breaker's life; each: name, calls that reached it, outcomes."""
    module = import_learner(Path(__file__).with_name(file))
    clock = Clock()
    dep = Dependency()
    breaker = module.CircuitBreaker(
        failure_threshold=threshold, reset_timeout=cooldown, clock=clock
    )
    steps: list[dict[str, Any]] = []

    def step(name: str, count: int = 1, failing: bool = False) -> None:
        dep.failing = failing
        before = dep.calls
        outcomes = [_outcome(breaker, dep) for _ in range(count)]
        steps.append({"step": name, "calls": dep.calls - before, "outcomes": outcomes})

    # closed: failures below the threshold, with successes between, never open it
    step("closed-fail-below", threshold - 1, failing=True)
    step("closed-success")
    step("closed-fail-below-again", threshold - 1, failing=True)
    step("closed-success-again")
    # `threshold` failures in a row open it; while open nothing reaches the dependency
    step("opening-failures", threshold, failing=True)
    step("open-refuses", callers)
    clock.now += cooldown * 0.9
    step("open-before-cooldown", 2)
    clock.now += cooldown * 0.2
    steps.append(_half_open(breaker, dep, callers))
    step("closed-after-trial", 3)
    # a failed trial opens it again for another cool-down
    step("opening-failures-2", threshold, failing=True)
    clock.now += cooldown * 1.1
    step("failed-trial", 1, failing=True)
    step("reopened-refuses", 3)
    clock.now += cooldown * 1.1
    step("second-trial")
    step("closed-at-last", 2)
    return steps


def _half_open(breaker: Any, dep: Dependency, callers: int) -> dict[str, Any]:
    """After the cool-down: one trial call is held inside the dependency while
    `callers` others arrive; they should be refused at once."""
    dep.failing = False
    dep.gate = threading.Event()
    dep.entered.clear()
    before = dep.calls
    results: dict[str, str] = {}

    def run(name: str) -> None:
        results[name] = _outcome(breaker, dep)

    trial = threading.Thread(target=run, args=("trial",), daemon=True)
    trial.start()
    entered = dep.entered.wait(2)
    during = dep.calls - before
    others = [threading.Thread(target=run, args=(f"c{i}",), daemon=True) for i in range(callers)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 1.0  # refusals are instant; one second is plenty
    for t in others:
        t.join(max(0.0, deadline - time.monotonic()))
    waiting = sum(1 for t in others if t.is_alive())
    others_calls = dep.calls - before - during
    dep.gate.set()
    trial.join(5)
    for t in others:
        t.join(5)
    dep.gate = None
    return {
        "step": "half-open-trial",
        "trial_reached": entered,
        "calls": dep.calls - before,
        "others_calls": others_calls,
        "others_waiting": waiting,
        "trial": results.get("trial", "still running"),
        "outcomes": [results.get(f"c{i}", "still running") for i in range(callers)],
    }
