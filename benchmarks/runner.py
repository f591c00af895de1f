"""The runner's cost per call of learner code: forked from the zygote, against two fresh
interpreters per call (SDTUTOR_RUNNER_ZYGOTE=0), measured in the same run.

    python benchmarks/runner.py [--calls N] [--rounds R] [--postgres URL] [--redis URL]

Each side is a fresh process that makes N calls of a learner function taking a psycopg
connection and a Redis client (what most labs' checks do), then exits; its CPU is read
from the rusage of everything it started, the zygote and the supervisors included, once
all of them have ended. The first call of each side (which starts the zygote there) is
counted: a `lab check` pays it too. Medians of interleaved rounds, so a busy moment hits
both sides alike. Budget: a call forked from the zygote costs at most a quarter of the
CPU of a call that starts its interpreters. Prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEARNER = """
def touch(conn, r, n):
    conn.execute("SELECT %s::int", (n,)).fetchone()
    r.ping()
    return n
"""
CALLS = """
import sys
from pathlib import Path
from sdtutor.lab.runner import Limits, Service, run_function

ws, calls, pg, redis = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
services = {"postgres": Service("postgres", pg), "redis": Service("redis", redis)}
for n in range(calls):
    run = run_function(ws, "touch.py", "touch", services=services,
                       clients=["postgres", "redis"], args=[n], limits=Limits(timeout=20))
    assert run.ok and run.value == n, (run.error, run.traceback)
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def side(ws: Path, calls: int, pg: str, redis: str, zygote: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call."""
    env = {**os.environ, "SDTUTOR_RUNNER_ZYGOTE": "1" if zygote else "0"}
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", CALLS, str(ws), str(calls), pg, redis], check=True, env=env
    )
    return (children_cpu() - cpu) / calls, (time.perf_counter() - wall) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sdtutor-bench-runner-") as tmp:
        ws = Path(tmp)
        (ws / "touch.py").write_text(LEARNER)
        started: list[tuple[float, float]] = []
        forked: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            started.append(side(ws, args.calls, args.postgres, args.redis, zygote=False))
            forked.append(side(ws, args.calls, args.postgres, args.redis, zygote=True))
    base_cpu = statistics.median(c for c, _ in started)
    cand_cpu = statistics.median(c for c, _ in forked)
    base_wall = statistics.median(w for _, w in started)
    cand_wall = statistics.median(w for _, w in forked)
    ratio = cand_cpu / base_cpu
    verdict = "within budget" if ratio <= 0.25 else "OVER BUDGET"
    print(
        f"CPU per call: {cand_cpu * 1000:.0f} ms forked vs {base_cpu * 1000:.0f} ms started "
        f"-> {ratio:.2f}x (budget 0.25x, {verdict}; median of {args.rounds} rounds of "
        f"{args.calls} calls)"
    )
    print(
        f"wall per call: {cand_wall * 1000:.0f} ms forked vs {base_wall * 1000:.0f} ms "
        f"started -> {cand_wall / base_wall:.2f}x (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
