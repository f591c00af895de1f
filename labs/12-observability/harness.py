"""Runs in the learner's process, beside their files; decides no verdict.

As a script it starts their app.py with INVENTORY_URL pointing at the checker's
inventory service (the runner cannot pass a service its own environment), and with
stdout flushed at every line, as PYTHONUNBUFFERED=1 does in a container: a print()
without flush=True still reaches the log reader, whole lines at a time.
`replay` calls their should_page once per recorded minute and returns every answer.
"""

from __future__ import annotations

import io
import os
import runpy
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
WINDOW = 360  # minutes of history handed to should_page


def replay(file: str, minutes: list[dict[str, Any]]) -> list[bool]:
    """should_page(history) at the end of every minute, history ending with that minute."""
    from sdtutor.lab.runner.harness import import_learner

    should_page = import_learner(HERE / file).should_page
    answers: list[bool] = []
    for end in range(1, len(minutes) + 1):
        history = [dict(m) for m in minutes[max(0, end - WINDOW) : end]]
        answers.append(bool(should_page(history)))
    return answers


if __name__ == "__main__":
    os.environ["INVENTORY_URL"] = sys.argv[1]
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    sys.argv = ["app.py"]
    runpy.run_path(str(HERE / "app.py"), run_name="__main__")
