"""Course content: where the files are (course), typed models, the loader, the linter.

Submodules load on first use, so that listing the course never pays for YAML parsing.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Course": "sdtutor.content.course",
    "LabSpec": "sdtutor.content.models",
    "Lesson": "sdtutor.content.models",
    "Question": "sdtutor.content.models",
    "Quiz": "sdtutor.content.models",
    "load_lab": "sdtutor.content.loader",
    "load_lesson": "sdtutor.content.loader",
    "load_quiz": "sdtutor.content.loader",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sdtutor.content' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
