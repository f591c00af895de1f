"""Removing everything a test's SDTUTOR_HOME made: its labs, kept seeded copies, roles
and private servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def stop_all(home: Path, env: Mapping[str, str] | None = None) -> None:
    """`sdtutor lab stop --all` for `home`, as a learner would run it (no SDTUTOR_* of
    this shell leaks in; `env` adds what that home was used with)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
    subprocess.run(
        [sys.executable, "-m", "sdtutor", "lab", "stop", "--all"],
        env={**clean, **(env or {}), "SDTUTOR_HOME": str(home)},
        capture_output=True,
        timeout=180,
    )
