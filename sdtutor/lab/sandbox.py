"""Runs learner code in a subprocess with a time limit (see harness.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LearnerRun:
    """What happened when the learner's function ran."""

    ok: bool
    value: Any = None
    statements: list[str] = field(default_factory=list)
    rows_fetched: int = 0
    error: str = ""
    traceback: str = ""
    timed_out: bool = False
    output: str = ""


def run_function(
    workspace: Path,
    file: str,
    function: str,
    url: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    timeout: float = 20.0,
) -> LearnerRun:
    """Call `function(conn, *args, **kwargs)` from the workspace's `file` in a child process.

    The child is killed (with its process group) when it runs longer than `timeout`.
    """
    with tempfile.TemporaryDirectory(prefix="sdtutor-run-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        report_path = Path(tmp) / "report.json"
        spec_path.write_text(
            json.dumps(
                {
                    "workspace": str(workspace),
                    "file": file,
                    "module": Path(file).stem,
                    "function": function,
                    "url": url,
                    "args": args or [],
                    "kwargs": kwargs or {},
                    "report": str(report_path),
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "sdtutor.lab.harness", str(spec_path)],
            cwd=str(workspace),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return LearnerRun(
                ok=False,
                timed_out=True,
                output=output[-2000:],
                error=f"it was still running after {timeout:g} seconds",
            )
        try:
            report = json.loads(report_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return LearnerRun(
                ok=False,
                output=output[-2000:],
                error=f"the process ended (exit code {proc.returncode}) "
                "without reporting; see its output",
            )
        return LearnerRun(
            ok=bool(report.get("ok")),
            value=report.get("value"),
            statements=list(report.get("statements", [])),
            rows_fetched=int(report.get("rows_fetched", 0)),
            error=str(report.get("error", "")),
            traceback=str(report.get("traceback", "")),
            output=output[-2000:],
        )


__all__ = ["LearnerRun", "run_function"]
