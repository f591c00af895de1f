"""Speed, measured as ratios against baselines taken in the same run.

    python benchmarks/speed.py [--runs N] [--postgres URL]

1. CLI start-up: `sdtutor list` against `python -c "import typer, rich"`
   (budget: within 1.3x).
2. Provisioning: a first `sdtutor lab start indexing` (external provider: make the lab's
   role and template, seed it, copy it) against creating a database and running the
   same setup.sql with psql (budget: within 1.2x). Also shown: the same with the local
   provider while its private server is already running.
3. Seed once, copy after: `lab start` after `lab stop`, and `lab reset`, copy the seeded
   template instead of seeding (budget: within 0.5x of the psql seed).

Medians of interleaved runs, so a busy moment on the machine hits both sides alike; each
run starts after `sync`, so none pays for the previous run's writes.
Prints numbers; it asserts nothing (timings on a shared laptop are not tests).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "labs" / "07-indexing" / "setup.sql"


def timed(fn: Callable[[], object]) -> float:
    # Each run starts with no writes pending: otherwise the disk is still flushing the
    # previous run's 30-60 MB when this one writes, and whichever side runs second pays.
    os.sync()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(args: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(args, check=True, capture_output=True, env=env)


def compare(
    name: str,
    baseline: Callable[[], object],
    candidate: Callable[[], object],
    runs: int,
    budget: float,
    after: Callable[[], object] | None = None,
    baseline_after: Callable[[], object] | None = None,
) -> None:
    """Interleave the two; `baseline_after` and `after` clean up after each side,
    untimed, so neither side pays for what the other left behind."""
    base_times, cand_times = [], []
    for _ in range(runs):
        base_times.append(timed(baseline))
        if baseline_after:
            baseline_after()
        cand_times.append(timed(candidate))
        if after:
            after()
    b, c = statistics.median(base_times), statistics.median(cand_times)
    verdict = "within budget" if c / b <= budget else "OVER BUDGET"
    print(
        f"{name}: {c * 1000:.0f} ms vs baseline {b * 1000:.0f} ms -> {c / b:.2f}x "
        f"(budget {budget}x, {verdict}; median of {runs})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "SDTUTOR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    opts = parser.parse_args()
    sdtutor = [sys.executable, "-m", "sdtutor"]
    home = tempfile.mkdtemp(prefix="sdtutor-bench-")
    # Time what a learner's install runs: compiled bytecode, as pip or a first run leaves it
    # (some shells set PYTHONDONTWRITEBYTECODE, which makes every run recompile edits).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SDTUTOR_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update({"SDTUTOR_HOME": home, "NO_COLOR": "1"})
    run([sys.executable, "-m", "compileall", "-q", str(REPO / "sdtutor")], env)
    try:
        run([*sdtutor, "list"], env)  # warm the file cache and create the store
        compare(
            "sdtutor list",
            lambda: run([sys.executable, "-c", "import typer, rich"], env),
            lambda: run([*sdtutor, "list"], env),
            opts.runs,
            1.3,
        )

        psql = shutil.which("psql")
        if psql is None:
            print("provisioning: skipped (psql is not installed for the baseline)")
            return
        ext = {**env, "SDTUTOR_PROVIDER": "external", "SDTUTOR_POSTGRES_URL": opts.postgres}
        ws = Path(home) / "ws"

        def raw_seed(server: str = opts.postgres) -> None:
            run([psql, server, "-q", "-c", "CREATE DATABASE sdtutor_bench_raw"])
            raw_db = server.rsplit("/", 1)[0] + "/sdtutor_bench_raw"
            run([psql, raw_db, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(SETUP)])

        def raw_drop(server: str = opts.postgres) -> Callable[[], None]:
            # Untimed, right after the seed: its dirty buffers and the autovacuum work it
            # makes would otherwise land on the candidate that runs next.
            sql = "DROP DATABASE IF EXISTS sdtutor_bench_raw"
            return lambda: run([psql, server, "-q", "-c", sql])

        def stop(environment: dict[str, str], *flags: str) -> Callable[[], None]:
            return lambda: run([*sdtutor, "lab", "stop", "indexing", *flags], environment)

        def start(environment: dict[str, str]) -> Callable[[], None]:
            return lambda: run([*sdtutor, "lab", "start", "indexing", "-w", str(ws)], environment)

        runs = max(3, opts.runs // 2)
        raw_drop()()
        compare("lab start indexing (external, first)", raw_seed, start(ext), runs, 1.2,
                after=stop(ext, "--purge"), baseline_after=raw_drop())  # fmt: skip
        start(ext)()
        stop(ext)()
        compare("lab start after lab stop (external)", raw_seed, start(ext), runs, 0.5,
                after=stop(ext), baseline_after=raw_drop())  # fmt: skip
        start(ext)()
        compare(
            "lab reset indexing (external)",
            raw_seed,
            lambda: run([*sdtutor, "lab", "reset", "indexing", "--yes"], ext),
            runs,
            0.5,
            baseline_after=raw_drop(),
        )
        stop(ext, "--purge")()
        local = {**env, "SDTUTOR_PROVIDER": "local"}
        # A second lab keeps the private server up between runs (a warm start), and its
        # URL lets the baseline seed on the very same server.
        from sdtutor.content.models import InstanceSpec
        from sdtutor.providers.local import LocalProvider

        os.environ["SDTUTOR_HOME"] = home
        keepalive = (InstanceSpec("postgres", "postgres"),)
        local_url = LocalProvider().start("bench-keepalive", keepalive)["postgres"].url
        compare(
            "lab start indexing (local, server warm, first)",
            lambda: raw_seed(local_url),
            start(local),
            runs,
            1.2,
            after=stop(local, "--purge"),
            baseline_after=raw_drop(local_url),
        )
        start(local)()
        stop(local)()
        compare("lab start after lab stop (local, server warm)", lambda: raw_seed(local_url),
                start(local), runs, 0.5, after=stop(local),
                baseline_after=raw_drop(local_url))  # fmt: skip
        start(local)()
        compare(
            "lab reset indexing (local)",
            lambda: raw_seed(local_url),
            lambda: run([*sdtutor, "lab", "reset", "indexing", "--yes"], local),
            runs,
            0.5,
            baseline_after=raw_drop(local_url),
        )
        stop(local, "--purge")()
    finally:
        run([*sdtutor, "lab", "stop", "--all"], env)  # destroys the private servers too
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
