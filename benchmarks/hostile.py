"""Hostile learner code, measured: how long the checker waits and what it costs it.

    python benchmarks/hostile.py [--runs N] [--limit SECONDS]

Budget (issue 6): `lab check` on code that hangs, forks away or floods output returns
within the lab's time limit plus a few seconds, its memory bounded. Each case calls one
learner function through `run_function` with Limits(timeout=--limit) and shows:

- wall time against the limit ("3.12 s = limit + 0.12 s"); the runner promises at most
  about two seconds past it (api.GRACE), which is the budget here;
- the checker process's peak RSS growth during the call: VmHWM after the call minus VmRSS
  before it, with the peak reset before each call through /proc/self/clear_refs (budget:
  16 MB, so an output flood is not being kept);
- which limit the runner says ended it, and how many processes carrying the run's mark
  (an environment variable given to the learner's code) were still alive the moment the
  call returned (budget: none). Any found are killed by pid afterwards.

Cases: `while True: pass`, `time.sleep(1000)`, setsid + double fork whose grandchild
sleeps holding stdout and stderr (the function itself returns at once), a 200 MB print
flood, a fork bomb, a 10 GB allocation; and a function that returns at once, as the
runner's fixed cost. One more row goes through `run_checks` on a tiny lab (time_limit
= --limit, one check that calls the sleeping function with `ctx.run`), as `lab check`
does: there the checks' own deadline races the runner's. Medians of interleaved runs
(all cases once per round), so a busy moment on the machine hits every case alike; the
load average is printed too, as the runner's fixed cost grows with it. Prints numbers;
it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sdtutor.lab.runner import Limits, run_function

if TYPE_CHECKING:
    from sdtutor.content.models import LabSpec

SLACK = 2.0  # seconds past the limit the runner promises at most (api.GRACE)
MEMORY_BUDGET_MB = 16.0
MARK = "HOSTILE_BENCH_MARK"

SOLUTION = '''
import os, sys, time


def returns():
    return 1


def spin():
    while True:
        pass


def sleeper():
    time.sleep(1000)


def escape():
    """setsid + double fork: the grandchild keeps stdout and stderr open and sleeps."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(1000)
        os._exit(0)
    os.wait()
    return "escaped"


def flood():
    line = "x" * (1024 * 1024 - 1)
    for _ in range(200):
        print(line)
    return "flooded"


def forkbomb():
    while True:
        try:
            os.fork()
        except OSError:
            pass


def allocate():
    return len(bytearray(10 * 1024**3))
'''

LAB_YAML = """format_version: 1
topic: hostile
title: Hostile code
services: [redis]
setup: {{}}
workspace: []
time_limit: {limit}
checks:
  - id: hangs
    title: calls a function that never returns
hints: [none]
"""

LAB_CHECKS = """from sdtutor.lab.checks import Fail, Pass, check


@check("hangs")
def hangs(ctx):
    run = ctx.run("solution.py", "sleeper")
    if not run.ok:
        raise Fail(run.error)
    return Pass("it returned")
"""

CASES = [
    ("return 1 (the runner's fixed cost)", "returns"),
    ("while True: pass", "spin"),
    ("time.sleep(1000)", "sleeper"),
    ("setsid + double fork holding the pipes", "escape"),
    ("200 MB print flood", "flood"),
    ("fork bomb", "forkbomb"),
    ("10 GB allocation", "allocate"),
]


@dataclass
class Tally:
    """One case's measurements over all rounds."""

    walls: list[float] = field(default_factory=list)
    growth_mb: list[float] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    survivors: int = 0
    killed: list[int] = field(default_factory=list)
    output: list[int] = field(default_factory=list)


def status_kb(field_name: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def marked(needle: bytes) -> list[int]:
    """Live processes whose environment holds `needle` (NAME=value)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def observe(tally: Tally, needle: bytes, call: Callable[[], tuple[str, int, int]]) -> None:
    """Time `call` (-> how it ended, processes killed, output kept) and add it to the tally."""
    resettable = reset_peak()
    base = status_kb("VmRSS") if resettable else status_kb("VmHWM")
    started = time.perf_counter()
    ended, killed, output = call()
    wall = time.perf_counter() - started
    left = marked(needle)
    tally.walls.append(wall)
    tally.growth_mb.append((status_kb("VmHWM") - base) / 1024)
    tally.ended.add(ended)
    tally.survivors += len(left)
    tally.killed.append(killed)
    tally.output.append(output)
    for pid in left:  # leave the machine as it was, whatever the runner missed
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def measure(ws: Path, function: str, limit: float, tally: Tally) -> None:
    """One `run_function` of `function`; its processes carry HOSTILE_BENCH_MARK."""
    mark = uuid.uuid4().hex

    def call() -> tuple[str, int, int]:
        run = run_function(
            ws, "solution.py", function, services={}, env={MARK: mark}, limits=Limits(timeout=limit)
        )
        return run.limit or ("returned" if run.ok else "failed"), run.killed, len(run.output)

    observe(tally, f"{MARK}={mark}".encode(), call)


def make_lab(root: Path, limit: float) -> LabSpec:
    """The tiny lab of the `run_checks` row."""
    from sdtutor.content.loader import load_lab

    (root / "starter").mkdir(parents=True)
    (root / "lab.yaml").write_text(LAB_YAML.format(limit=limit))
    (root / "README.md").write_text("# Hostile code\n")
    (root / "checks.py").write_text(LAB_CHECKS)
    return load_lab(root)


def measure_check(lab: LabSpec, ws: Path, redis_url: str, tally: Tally) -> None:
    """One `run_checks` of the tiny lab, as `lab check` runs it.

    A check cannot give learner code an environment variable of its own; the lab's Redis
    key prefix is one every learner process inherits (REDIS_KEY_PREFIX), so the mark rides
    in it. Nothing connects to Redis: the check asks for no client.
    """
    from sdtutor.lab.checks import run_checks

    prefix = f"sdtutor-hostile-bench:{uuid.uuid4().hex}:"

    def call() -> tuple[str, int, int]:
        results = run_checks(lab, ws, {"redis": redis_url}, prefixes={"redis": prefix})
        ended = "; ".join(f"check {r.status} ({r.message.split(':')[0]})" for r in results)
        return ended, 0, 0

    observe(tally, f"REDIS_KEY_PREFIX={prefix}".encode(), call)


def report(name: str, tally: Tally, limit: float, runs: int) -> None:
    """One line per case."""
    wall, worst = statistics.median(tally.walls), max(tally.walls)
    margin = wall - limit
    growth = statistics.median(tally.growth_mb)
    over = worst > limit + SLACK or max(tally.growth_mb) > MEMORY_BUDGET_MB or tally.survivors
    verdict = "OVER BUDGET" if over else "within budget"
    sign = "+" if margin >= 0 else "-"
    extra = []
    if max(tally.killed):
        extra.append(f"killed {statistics.median(tally.killed):.0f}")
    if max(tally.output) >= 1024:
        extra.append(f"output kept {max(tally.output) // 1024} kB")
    print(
        f"{name}: {wall:.2f} s = limit {sign} {abs(margin):.2f} s (worst {worst:.2f} s); "
        f"checker peak RSS +{growth:.1f} MB (worst +{max(tally.growth_mb):.1f}); "
        f"ended by {'/'.join(sorted(tally.ended))}; survivors {tally.survivors}"
        + (f"; {', '.join(extra)}" if extra else "")
        + f" ({verdict}; median of {runs})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--limit", type=float, default=3.0, help="the lab's time limit")
    parser.add_argument(
        "--redis",
        default=os.environ.get("SDTUTOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="the tiny lab's Redis (never connected to: it only carries the mark)",
    )
    opts = parser.parse_args()
    home = tempfile.mkdtemp(prefix="sdtutor-hostile-")
    os.environ["SDTUTOR_HOME"] = home  # a scratch state folder, deleted at the end
    ws = Path(home) / "ws"
    ws.mkdir()
    (ws / "solution.py").write_text(SOLUTION)
    rows = [(name, function, Tally()) for name, function in CASES]
    lab = None
    with contextlib.suppress(ImportError):
        from sdtutor.lab.checks import CheckContext

        if hasattr(CheckContext, "run"):
            lab = make_lab(Path(home) / "lab", opts.limit)
    check_row = ("lab check (run_checks, one check) on time.sleep(1000)", "", Tally())
    try:
        load_before = os.getloadavg()[0]
        measure(ws, "returns", opts.limit, Tally())  # warm the imports and the file cache
        if lab is not None:
            measure_check(lab, ws, opts.redis, Tally())  # and the checks' own imports
        for _ in range(opts.runs):
            for _, function, tally in rows:
                measure(ws, function, opts.limit, tally)
            if lab is not None:
                measure_check(lab, ws, opts.redis, check_row[2])
        load = os.getloadavg()[0]
        print(
            f"limit {opts.limit:g} s; budget: limit + {SLACK:g} s, checker peak RSS growth "
            f"under {MEMORY_BUDGET_MB:g} MB, no survivors; load average {load_before:.1f} "
            f"before, {load:.1f} after ({os.cpu_count()} CPUs)"
        )
        if not reset_peak():
            print("(/proc/self/clear_refs refused: peak growth counts only new highs)")
        for name, _, tally in rows:
            report(name, tally, opts.limit, opts.runs)
        if lab is not None:
            report(check_row[0], check_row[2], opts.limit, opts.runs)
        else:
            print("lab check: skipped (sdtutor.lab.checks has no CheckContext.run here)")
        tree = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"largest process in any learner tree (supervisor included): {tree:.0f} MB")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
