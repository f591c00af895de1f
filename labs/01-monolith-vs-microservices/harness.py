"""Places one of the checker's orders through the learner's place_order; runs in their
process.

The checks run this through the runner, which puts this file into the sandbox's copy of
the workspace beside orders.py. Nothing here decides a verdict, and nothing here is
trusted: it passes on what place_order returned (or lets what it raised escape). How
long the call took is measured by the runner's supervisor, outside this process; what
reached inventory is counted by the checker's own HTTP server, and what was saved is
read from PostgreSQL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner

IMPORT_FAILED = "orders.py could not be imported:"
_sleep = time.sleep  # taken before orders.py is imported, so patching time changes nothing


def _error(exc: BaseException) -> str:
    try:
        lines = str(exc).strip().splitlines()
    except BaseException:  # an exception whose __str__ raises
        lines = []
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")


# Imported once, before the runner starts its clock (and, for workers, before the fork):
# slow work at import time is not counted against place_order.
try:
    _LEARNER: Any = import_learner(Path(__file__).with_name("orders.py"))
    _FAILED = ""
except BaseException as exc:  # reported by place_one, as the learner's error
    _LEARNER, _FAILED = None, _error(exc)


def _jsonable(value: Any) -> Any:
    """What the learner returned, as JSON (a dict, a Row, a tuple...)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    try:
        return {str(k): _jsonable(v) for k, v in dict(value).items()}
    except (TypeError, ValueError):
        return repr(value)


def place_one(conn: Any, url: str, order: dict[str, Any], linger: float) -> Any:
    """place_order(conn, url, order), then `linger` seconds more in this process, so that
    retries it left running in the background reach inventory and are counted (the
    checker takes the linger off the time the runner measured)."""
    if _LEARNER is None:
        raise ImportError(f"{IMPORT_FAILED} {_FAILED}")
    # The orders module's connection looks in its own schema first, so `orders` and
    # `order_lines` name the right tables before and after they move.
    conn.execute("SET search_path TO orders, public")
    try:
        return _jsonable(_LEARNER.place_order(conn, url, order))
    finally:
        _sleep(linger)
