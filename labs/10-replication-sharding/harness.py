"""Drives the learner's router.py and shard.py the way the app would; runs in their process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace, beside the learner's files (`ctx.run(..., files=...)`).
Nothing here decides a verdict on its own: where each statement ran is counted at the
servers (each statement carries a `/* step N */` tag for that), what the replica held is
read on the replica by the checker, and the values returned here are rows the learner's
code handed back, which the checks compare with what was written.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any


def _learner(name: str) -> Any:
    """Import the learner's module, which sits beside this file in the sandbox."""
    file = Path(__file__).with_name(name)
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # after the libraries: the workspace cannot shadow them
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


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
