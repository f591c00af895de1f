"""Drives the learner's HashRing inside their process; returns raw placements only.

The checks run this through the runner, which puts it into the sandbox's copy of the
workspace beside ring.py. It decides nothing: the checker compares the placements.

The checks call `place` twice: once forked from the runner's warm process, and once in a
fresh interpreter (`ctx.run(..., fresh=True)`) with `again=True`. Forked calls share
Python's per-process hash salt; only a new interpreter shows that hash() of a str
changes from one process to the next, as it does between two balancer machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner


def place(
    file: str,
    nodes: list[str],
    new: str,
    gone: str,
    keys: list[str],
    backends: list[str],
    users: list[str],
    again: bool = False,
) -> dict[str, Any]:
    """node_for of every key on a ring of `nodes` ("ten") and of every user on a ring of
    `backends` ("sticky"); unless `again`, also of every key after add(new) ("eleven")
    and on a fresh ring of `nodes` after remove(gone) ("nine")."""
    ring_class = import_learner(Path(__file__).with_name(file)).HashRing
    ring = ring_class(list(nodes))
    placed = {"ten": [str(ring.node_for(k)) for k in keys]}
    if not again:
        ring.add(new)
        placed["eleven"] = [str(ring.node_for(k)) for k in keys]
        ring = ring_class(list(nodes))
        ring.remove(gone)
        placed["nine"] = [str(ring.node_for(k)) for k in keys]
    ring = ring_class(list(backends))
    placed["sticky"] = [str(ring.node_for(u)) for u in users]
    return placed
