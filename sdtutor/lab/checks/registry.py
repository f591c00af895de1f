"""`@check(id)` and loading a lab's checks.py."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Union

from sdtutor.content.models import LabSpec
from sdtutor.errors import LabError
from sdtutor.lab.checks.outcome import Pass
from sdtutor.lab.results import Evidence

if TYPE_CHECKING:
    from sdtutor.lab.checks.context import CheckContext

# What a check may return: a message, (message, evidence), or a Pass.
CheckOutcome = Union[str, tuple[str, Sequence[Evidence]], Pass]  # noqa: UP007
CheckFunction = Callable[["CheckContext"], CheckOutcome]
_REGISTERING: dict[str, CheckFunction] | None = None


def check(check_id: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register a function as the check with this id (as named in lab.yaml)."""

    def register(fn: CheckFunction) -> CheckFunction:
        if _REGISTERING is not None:
            _REGISTERING[check_id] = fn
        return fn

    return register


def load_checks(lab: LabSpec) -> dict[str, CheckFunction]:
    """Import a lab's checks.py and return its checks by id."""
    global _REGISTERING
    path = lab.checks_file
    if not path.is_file():
        raise LabError(f"{path} is missing.", "Every lab needs a checks.py.")
    name = f"sdtutor_lab_checks_{lab.topic.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LabError(f"{path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    registered: dict[str, CheckFunction] = {}
    _REGISTERING = registered
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        _REGISTERING = None
    return registered


__all__ = ["CheckFunction", "CheckOutcome", "check", "load_checks"]
