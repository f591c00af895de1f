"""Build hook (setuptools `build_py`): pack the course into the wheel and the sdist.

The repository keeps `lessons/`, `quizzes/` and `labs/` at the top level; a built wheel
carries them as `sdtutor/_course/{lessons,quizzes,labs}/`, every file, whatever its
suffix (labs hold `.py`, `.sql`, `.yaml`, `README.md` and `wrong/*/` case folders).
`sdtutor.locations.course_dir()` picks the checkout's folders when they are there
(an editable install) and this copy otherwise.

Named in pyproject.toml (`[tool.setuptools] cmdclass`); never imported at run time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools.command.build_py import build_py

COURSE_FOLDERS = ("lessons", "quizzes", "labs")
TARGET = ("sdtutor", "_course")
SKIPPED_DIRS = frozenset(
    {"__pycache__", ".sdtutor-backup", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)
"""Caches and lab-reset backups: never part of the course."""
SKIPPED_SUFFIXES = (".pyc", ".pyo")
SKIPPED_NAMES = frozenset({".DS_Store"})


def course_files(root: Path) -> list[str]:
    """Every course file under `root`, as sorted '/'-separated paths relative to it."""
    found: list[str] = []
    for folder in COURSE_FOLDERS:
        for dirpath, dirnames, filenames in os.walk(root / folder):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            for name in filenames:
                if name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES):
                    continue
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


class BuildPyWithCourse(build_py):
    """`build_py` that also copies the course into `sdtutor/_course/`."""

    def _course_entry(self) -> tuple[str, str, str, list[str]]:
        # build_py's data-file tuple: (package, source dir, build dir, relative names).
        # The source dir is the project root (setuptools runs from there), so the sdist
        # lists the course files at their repository paths, and the wheel gets them
        # under sdtutor/_course/.
        build_dir = os.path.join(self.build_lib, *TARGET)
        return ".".join(TARGET), ".", build_dir, course_files(Path("."))

    def _get_data_files(self) -> list[tuple[str, str, str, list[str]]]:
        return [*super()._get_data_files(), self._course_entry()]

    def get_data_files_without_manifest(self) -> list[tuple[str, str, str, list[str]]]:
        """The package data, plus the course (what the sdist's manifest lists)."""
        return [*super().get_data_files_without_manifest(), self._course_entry()]

    def run(self) -> None:
        """Build as usual, after removing a course copy left by an earlier build."""
        if not self.editable_mode:
            # build/lib outlives a build: without this, a file deleted from the course
            # would still ship in the next wheel.
            shutil.rmtree(os.path.join(self.build_lib, *TARGET), ignore_errors=True)
        super().run()
