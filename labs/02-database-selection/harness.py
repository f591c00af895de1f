"""Calls the learner's bank.py the way the payments service would; runs in their process.

The checks run `transfers` through the runner, which puts this file into the sandbox's
copy of the workspace beside bank.py. Nothing here decides a verdict on its own: the
checks compare what it reports with the balances PostgreSQL holds afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner


def _learner(name: str) -> Any:
    """The learner's module `name`, imported afresh from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(name))


def transfers(conn: Any, file: str, plan: list[list[int]], budget: float) -> list[dict[str, Any]]:
    """Call transfer(conn, src, dst, cents) for each planned transfer, one after another.

    Stops at the first exception, as a request that fails stops there: what it raised
    (and its SQLSTATE, when PostgreSQL raised it) is the last entry. Starts no transfer
    after `budget` seconds, which bounds the work, never the verdict: code that waits out
    many deadlocks (a second each) just moves fewer payments.
    """
    module = _learner(file)
    done: list[dict[str, Any]] = []
    start = time.monotonic()
    for src, dst, cents in plan:
        if time.monotonic() - start > budget:
            break
        entry: dict[str, Any] = {"src": src, "dst": dst, "cents": cents}
        try:
            result = module.transfer(conn, src, dst, cents)
        except Exception as exc:  # the learner's error, reported to the check
            text = str(exc).strip().splitlines()
            entry["error"] = f"{type(exc).__name__}: {text[0] if text else ''}".strip()
            entry["sqlstate"] = getattr(exc, "sqlstate", None)
            done.append(entry)
            break
        entry["result"] = result if isinstance(result, bool) else repr(result)
        done.append(entry)
    return done
