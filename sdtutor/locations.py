"""Every path sdtutor reads or writes, in one place.

`SDTUTOR_HOME` holds all state when set; otherwise the platform's user data directory.
Workspaces go to `~/sdtutor-labs/NN-slug` unless `SDTUTOR_HOME` is set, in which case they
stay under it (tests and classrooms keep everything in one folder).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def home() -> Path:
    """The folder that holds progress, lab state and local service data."""
    env = os.environ.get("SDTUTOR_HOME")
    if env:
        path = Path(env).expanduser().resolve()
        if path.exists() and not path.is_dir():
            from sdtutor.errors import ProgressError

            raise ProgressError(
                f"SDTUTOR_HOME is {path}, which is a file, not a folder.",
                "Point SDTUTOR_HOME at a folder (it is made if missing), or unset it to "
                "keep your progress in the usual place.",
            )
        return path
    import platformdirs

    return Path(platformdirs.user_data_dir("sdtutor", appauthor=False))


def home_is_explicit() -> bool:
    """True when the user chose the state folder with SDTUTOR_HOME."""
    return bool(os.environ.get("SDTUTOR_HOME"))


def progress_db() -> Path:
    """The SQLite progress store."""
    return home() / "progress.sqlite3"


def labs_state_dir() -> Path:
    """Per-lab runtime state (service URLs, workspace path); private to the user."""
    return home() / "labs"


def services_dir() -> Path:
    """Data of the local provider's private servers."""
    return home() / "services"


def default_workspace(dirname: str) -> Path:
    """Where a lab's workspace goes when `--workspace` is not given."""
    if home_is_explicit():
        return home() / "workspaces" / dirname
    return Path.home() / "sdtutor-labs" / dirname


def home_digest() -> str:
    """A short stable name for this state folder (used where a path must live elsewhere)."""
    import hashlib

    return hashlib.sha256(str(home()).encode()).hexdigest()[:10]


def course_dir() -> Path:
    """The built-in course: the checkout's lessons/, quizzes/ and labs/, else the wheel's copy."""
    checkout = PACKAGE_DIR.parent
    # Running from a checkout (an editable install, or `python -m sdtutor` in the repo):
    # the course is beside the package, and edits to it show at once.
    if (checkout / "pyproject.toml").is_file() and (checkout / "lessons").is_dir():
        return checkout
    # An installed wheel: the build hook (sdtutor/_build.py) put the course here.
    return PACKAGE_DIR / "_course"


def extra_course_dir() -> Path | None:
    """An author's course folder from SDTUTOR_COURSE, if any."""
    env = os.environ.get("SDTUTOR_COURSE")
    return Path(env).expanduser().resolve() if env else None
