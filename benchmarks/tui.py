"""TUI start-up, measured as a ratio against a baseline taken in the same run.

    python benchmarks/tui.py [--runs N]

The time from starting Python to the course map being ready (the first frame that shows
the topics' rows, the next step and the highlighted topic's panel) against the same for
a bare Textual app with one Static widget (the first frame that shows it). Each side is
a fresh subprocess running headless at 80x24, so the imports count, as they do for a
learner. Budget: within 1.5x.

Medians of interleaved runs, so a busy moment on the machine hits both sides alike.
Prints numbers; it asserts nothing (timings on a shared machine are not tests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Each child prints how long after its own start the first frame showing what it must
# show was handed to the terminal, then exits; the parent adds nothing, so process
# start-up is the same on both sides. Both sides watch the frames the same way: every
# frame textual would write (headless, it renders them and writes nothing) is turned
# into plain text, and the clock stops at the frame by which all the markers have been
# drawn. For the course map: table rows at full width (a whole title, and the last
# column's "not started", which only the lab column shows), the next step, the panel on
# the highlighted topic with its lesson read (its reading time), and the key bar.
WATCH = """
import re, time; t0 = time.perf_counter()
from textual.app import App

MARKERS = {markers!r}
_seen = set()
_watching = 0.0  # time spent reading frames: not the app's, so taken off
_ansi = re.compile(r"\\x1b\\[[0-9;?]*[A-Za-z]")

def _display(self, screen, renderable):
    global _watching
    now = time.perf_counter()
    if renderable is None or not hasattr(renderable, "render_segments"):
        return
    text = _ansi.sub("", renderable.render_segments(self.console))
    _seen.update(m for m in MARKERS if m in text)
    if len(_seen) == len(MARKERS) and not getattr(self, "_done", False):
        self._done = True
        print(now - t0 - _watching)
        self.exit()
    _watching += time.perf_counter() - now

App._display = _display
"""

BASELINE = (
    WATCH.format(markers=["hello"])
    + """
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("hello")

Bare().run(headless=True, size=(80, 24))
"""
)

CANDIDATE = (
    WATCH.format(
        markers=[
            "SQL vs NoSQL vs NewSQL, ACID",
            "not started",
            "Next: the lesson of 1.",
            "min read",
            "? Help",
        ]
    )
    + """
from sdtutor.tui.app import SdtutorApp

SdtutorApp().run(headless=True, size=(80, 24))
"""
)


def timed(code: str, env: dict[str, str]) -> float:
    """Seconds from the child's start to its first painted frame, as the child saw it,
    plus the interpreter's own start-up (the same for both sides; measured once). The
    child's exit, tearing the app down, is not part of start-up."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,  # a frame that never shows the markers must not hang the run
    )
    return float(out.stdout.strip().splitlines()[-1]) + _interpreter_start


_interpreter_start = 0.0


def main() -> None:
    global _interpreter_start
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    opts = parser.parse_args()
    home = tempfile.mkdtemp(prefix="sdtutor-bench-tui-")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SDTUTOR_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update({"SDTUTOR_HOME": home, "PYTHONPATH": str(REPO)})
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "sdtutor")], check=True)
    # The interpreter's own start-up, the same for both sides.
    starts = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        starts.append(time.perf_counter() - t)
    _interpreter_start = statistics.median(starts)
    # Warm the file cache and create the progress store.
    timed(BASELINE, env)
    timed(CANDIDATE, env)
    base, cand = [], []
    for _ in range(opts.runs):
        base.append(timed(BASELINE, env))
        cand.append(timed(CANDIDATE, env))
    b, c = statistics.median(base), statistics.median(cand)
    verdict = "within budget" if c / b <= 1.5 else "OVER BUDGET"
    print(
        f"course map ready: {c * 1000:.0f} ms vs a bare one-widget app {b * 1000:.0f} ms "
        f"-> {c / b:.2f}x (budget 1.5x, {verdict}; median of {opts.runs})"
    )


if __name__ == "__main__":
    main()
