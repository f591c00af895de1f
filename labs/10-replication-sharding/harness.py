"""Drives the learner's router.py and shard.py the way the app would; runs in their process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace, beside the learner's files (`ctx.run(..., files=...)`).
Nothing here decides a verdict on its own: where each statement ran is counted at the
servers (each statement carries a `/* step N */` tag for that), what the replica held is
read on the replica by the checker, and the values returned here are rows the learner's
code handed back, which the checks compare with what was written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner


def _learner(name: str) -> Any:
    """The learner's module `name`, imported afresh from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(name))


def _plain(value: Any) -> Any:
    """A row value as JSON can carry it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def play(primary: Any, replica: Any, file: str, steps: list[list[Any]]) -> list[dict[str, Any]]:
    """Play `steps` through one Router(primary, replica), in order.

    A step is [action, session, sql, params] with action "write" or "read", or
    ["pause", "", "", [seconds]]: the app does something else for a moment. Returns, per
    step played, {"rows": [...], "seconds": ...}; a step that raises ends the play with
    {"error": "..."} as its entry.
    """
    router = _learner(file).Router(primary, replica)
    out: list[dict[str, Any]] = []
    for action, session, sql, params in steps:
        started = time.monotonic()
        if action == "pause":
            time.sleep(float(params[0]))
            out.append({"rows": [], "seconds": round(time.monotonic() - started, 3)})
            continue
        try:
            rows = getattr(router, action)(session, sql, tuple(params))
        except Exception as exc:
            out.append({"error": f"{type(exc).__name__}: {exc}".strip()})
            break
        rows = [list(map(_plain, row)) for row in (rows or [])]
        out.append({"rows": rows, "seconds": round(time.monotonic() - started, 3)})
    return out


def place(file: str, cases: list[dict[str, Any]]) -> list[list[Any]]:
    """shard_for(tenant, key, shards) for every [tenant, key] of each case, in one process."""
    shard_for = _learner(file).shard_for
    return [
        [_plain(shard_for(tenant, key, list(case["shards"]))) for tenant, key in case["keys"]]
        for case in cases
    ]
