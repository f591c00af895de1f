"""Lab 13 (ci-cd): answers the proof's cases do not hold, judged right.

The lab starts no server: flags.py and canary.py run through the runner (one learner
process per set of answers), and the workflow is read as YAML by the checker. Other
correct answers must pass: other hashes and bucket sizes, a seeded draw that does not
depend on the percentage, a flags.py that forks a child; a Poisson tail, a Wilson
interval or a shrinking margin for the canary, and answers in capitals; workflows with a
linear chain, a deploy job, jobs known by their names, images by digest, a reusable
workflow. Other wrong ones must fail and say why: a random draw per call, `<=` at 0%, a
window rotated per flag, answers that are not booleans, code that hangs; a canary that
ignores latency, judges latency by a fixed number, divides by a baseline of zero, waits
for errors instead of requests; workflows that deploy before the scan, let a red job
through, trigger on push or pull_request_target, pin to short SHAs or moving tags, run
on ubuntu-latest, or chain more than ten minutes of timeouts. The proof runs in
test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "13-ci-cd"
SOLUTION = {
    p.relative_to(LAB_DIR / "solution").as_posix(): p.read_text()
    for p in (LAB_DIR / "solution").rglob("*")
    if p.is_file()
}
WORKFLOW = ".github/workflows/ci.yml"
FLAG_CHECKS = ("flag-share", "flag-sticky", "flag-stable", "flag-independent")
CANARY_CHECKS = ("canary-waits", "canary-rollback", "canary-promote")
PIPELINE_CHECKS = ("pipeline-gates", "pipeline-pinned", "pipeline-budget")


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    return load_lab(LAB_DIR)


def judge(
    lab: LabSpec, check_ids: tuple[str, ...], files: dict[str, str], time_limit: float = 10
) -> dict[str, str]:
    """Run some checks over the solution with `files` laid over it; failed id -> message.

    `time_limit` bounds each learner call (code that hangs is given 2 s, not the lab's 10).
    """
    only = dataclasses.replace(
        lab,
        checks=tuple(c for c in lab.checks if c.id in check_ids),
        time_limit=time_limit,
    )
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab13-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).parent.mkdir(parents=True, exist_ok=True)
            (workspace / name).write_text(text)
        results: list[CheckResult] = run_checks(only, workspace, {}, deadline=60)
    assert [r.id for r in results] == list(check_ids)
    return {r.id: r.message for r in results if not r.passed}


# ------------------------------------------------------------------ flags

MD5_100 = """
import hashlib


def is_enabled(flag, user_id, percent):
    bucket = int(hashlib.md5(f"{flag}/{user_id}".encode()).hexdigest(), 16) % 100
    return bucket < percent
"""

BLAKE2_FRACTION = """
import hashlib


def is_enabled(flag, user_id, percent):
    digest = hashlib.blake2b(user_id.encode(), key=flag.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < percent / 100
"""

SEEDED_DRAW = """
import random


def is_enabled(flag, user_id, percent):
    # One draw per (flag, user), whatever the percentage: a str seed is hashed with SHA-512.
    return random.Random(f"{flag}|{user_id}").random() * 100 < percent
"""

FORKS_A_CHILD = """
import os
import time

if os.fork() == 0:  # a child left behind: the runner must end it
    time.sleep(3600)
    os._exit(0)
""" + SOLUTION["flags.py"].replace("from __future__ import annotations\n", "")

RANDOM_PER_CALL = """
import random


def is_enabled(flag, user_id, percent):
    return random.random() * 100 < percent
"""

AT_OR_BELOW = MD5_100.replace("bucket < percent", "bucket <= percent")

ROTATED_WINDOW = """
import hashlib


def _h(text):
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 100


def is_enabled(flag, user_id, percent):
    # Each flag starts its window somewhere else on the same buckets.
    return (_h(user_id) - _h(flag)) % 100 < percent
"""

NOT_A_BOOL = SOLUTION["flags.py"].replace(
    "return bucket(flag, user_id) < percent * BUCKETS / 100",
    'return "on" if bucket(flag, user_id) < percent * BUCKETS / 100 else None',
)

HANGS = """
import time


def is_enabled(flag, user_id, percent):
    time.sleep(3600)
"""

FLAGS_JUDGED = {
    "md5-100-buckets": (MD5_100, set(), ""),
    "blake2-keyed-fraction": (BLAKE2_FRACTION, set(), ""),
    "seeded-draw": (SEEDED_DRAW, set(), ""),
    "forks-a-child": (FORKS_A_CHILD, set(), ""),
    "random-per-call": (
        RANDOM_PER_CALL,
        {"flag-sticky", "flag-stable"},
        "got a different answer the second time",
    ),
    "at-or-below": (AT_OR_BELOW, {"flag-share"}, "kill switch"),
    "rotated-window": (ROTATED_WINDOW, {"flag-independent"}, "flags push users apart"),
    "not-a-bool": (NOT_A_BOOL, set(FLAG_CHECKS), "must answer True or False"),
    "hangs": (HANGS, set(FLAG_CHECKS), "did not finish"),
}


def test_the_flag_variants_differ_from_the_solution() -> None:
    assert SOLUTION["flags.py"] != NOT_A_BOOL
    assert AT_OR_BELOW != MD5_100


@pytest.mark.parametrize("name", list(FLAGS_JUDGED))
def test_other_flags_are_judged(name: str, lab: LabSpec) -> None:
    text, fails, phrase = FLAGS_JUDGED[name]
    failed = judge(lab, FLAG_CHECKS, {"flags.py": text}, 2 if name == "hangs" else 10)
    assert set(failed) == fails, failed
    assert not phrase or any(phrase in m for m in failed.values()), failed


# ------------------------------------------------------------------ canary

POISSON_TAIL = """
import math

MIN_REQUESTS = 400


def _tail(k, lam):
    # P(X >= k) for X ~ Poisson(lam)
    term, below = math.exp(-lam), 0.0
    for i in range(k):
        below += term
        term *= lam / (i + 1)
    return max(0.0, 1.0 - below)


def decide(baseline, canary):
    if canary["requests"] < MIN_REQUESTS:
        return "HOLD"
    rate = (baseline["errors"] + 1) / (baseline["requests"] + 1)
    if _tail(canary["errors"], rate * canary["requests"]) < 0.001:
        return "ROLLBACK"
    if canary["p99_ms"] > 1.5 * baseline["p99_ms"]:
        return "ROLLBACK"
    return "Promote"
"""

WILSON = """
import math

Z = 3.0


def _bounds(errors, n):
    p = errors / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def decide(baseline, canary):
    if canary["requests"] < 200:
        return "hold"
    low, _ = _bounds(canary["errors"], canary["requests"])
    _, high = _bounds(baseline["errors"], baseline["requests"])
    if low > high:
        return "rollback"
    if canary["p99_ms"] - baseline["p99_ms"] > max(50.0, 0.3 * baseline["p99_ms"]):
        return "rollback"
    return "promote"
"""

SHRINKING_MARGIN = """
import math


def decide(baseline, canary):
    n = canary["requests"]
    if n < 1000:
        return "hold"
    base = baseline["errors"] / baseline["requests"]
    allowed = base + 3 * math.sqrt(base * (1 - base) / n) + 0.001
    if canary["errors"] / n > allowed or canary["p99_ms"] > baseline["p99_ms"] * 1.2 + 20:
        return "rollback"
    return "promote"
"""

ERRORS_ONLY = SOLUTION["canary.py"].replace(
    '    if canary["p99_ms"] > baseline["p99_ms"] * P99_SLACK + P99_MARGIN_MS:\n'
    '        return "rollback"\n',
    "",
)

FIXED_LATENCY = SOLUTION["canary.py"].replace(
    'canary["p99_ms"] > baseline["p99_ms"] * P99_SLACK + P99_MARGIN_MS',
    'canary["p99_ms"] > 500',
)

DIVIDES_BY_BASELINE = SOLUTION["canary.py"].replace(
    "    if error_z(baseline, canary) > Z_LIMIT:\n",
    "    base = baseline['errors'] / baseline['requests']\n"
    "    if (canary['errors'] / canary['requests']) / base > 3:\n",
)

WAITS_FOR_ERRORS = SOLUTION["canary.py"].replace(
    'if canary["requests"] < MIN_REQUESTS:', 'if canary["errors"] < 10:'
)

NONE_FOR_HOLD = SOLUTION["canary.py"].replace('return "hold"', "return None")

CANARY_HANGS = """
import time


def decide(baseline, canary):
    time.sleep(3600)
"""

CANARIES_JUDGED = {
    "poisson-tail-capitals": (POISSON_TAIL, set(), ""),
    "wilson-intervals": (WILSON, set(), ""),
    "shrinking-margin": (SHRINKING_MARGIN, set(), ""),
    "errors-only": (ERRORS_ONLY, {"canary-rollback"}, "Compare latency with the baseline"),
    "fixed-latency": (
        FIXED_LATENCY,
        {"canary-rollback", "canary-promote"},
        "not against a fixed number",
    ),
    "divides-by-baseline": (
        DIVIDES_BY_BASELINE,
        {"canary-rollback", "canary-promote"},
        "raised ZeroDivisionError",
    ),
    "waits-for-errors": (
        WAITS_FOR_ERRORS,
        {"canary-rollback", "canary-promote"},
        "never moves on",
    ),
    "none-for-hold": (NONE_FOR_HOLD, {"canary-waits", "canary-promote"}, "returned None"),
    "hangs": (CANARY_HANGS, set(CANARY_CHECKS), "did not finish"),
}


def test_the_canary_variants_differ_from_the_solution() -> None:
    for text in (ERRORS_ONLY, FIXED_LATENCY, DIVIDES_BY_BASELINE, WAITS_FOR_ERRORS):
        assert text != SOLUTION["canary.py"]
    assert SOLUTION["canary.py"] != NONE_FOR_HOLD


@pytest.mark.parametrize("name", list(CANARIES_JUDGED))
def test_other_canary_gates_are_judged(name: str, lab: LabSpec) -> None:
    text, fails, phrase = CANARIES_JUDGED[name]
    failed = judge(lab, CANARY_CHECKS, {"canary.py": text}, 2 if name == "hangs" else 10)
    assert set(failed) == fails, failed
    assert not phrase or any(phrase in m for m in failed.values()), failed


# ------------------------------------------------------------------ the pipeline

CI = SOLUTION[WORKFLOW]


def ci(*edits: tuple[str, str]) -> str:
    """The solution's workflow with each (old, new) regex edit made; each must match."""
    text = CI
    for old, new in edits:
        text, n = re.subn(old, new, text, flags=re.MULTILINE)
        assert n, old
    return text


CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"

LINEAR_NAMED = f"""
'on': [pull_request, push]
jobs:
  a:
    name: Lint
    runs-on: ubuntu-24.04
    timeout-minutes: 1
    steps: [{{uses: {CHECKOUT}}}, {{run: ruff check .}}]
  b:
    name: Build image
    needs: [a]
    runs-on: ubuntu-24.04
    timeout-minutes: 2
    container: {{image: "python:3.11.10-slim"}}
    steps: [{{run: docker build .}}]
  c:
    name: Unit tests
    needs: [b]
    runs-on: ubuntu-24.04
    timeout-minutes: 4
    services:
      db: {{image: "postgres@sha256:{"ab" * 32}"}}
    steps: [{{run: pytest}}]
  d:
    name: Security scan
    needs: [c]
    runs-on: [self-hosted, linux]
    timeout-minutes: 3
    steps: [{{uses: ./.github/actions/scan}}]
"""

WITH_DEPLOY = (
    CI
    + """
  deploy:
    needs: [test, scan]
    if: github.ref == 'refs/heads/main'
    runs-on: ubuntu-24.04
    timeout-minutes: 15
    steps:
      - run: ./deploy.sh canary 10
"""
)

REUSABLE_SCAN = ci(
    (
        r"  scan:\n    needs: build\n(    .*\n|      .*\n)*",
        "  scan:\n    needs: build\n    uses: acme/ci/.github/workflows/scan.yml@"
        + "c0ffee" * 6
        + "c0ff\n",
    )
)

PIPELINES_JUDGED = {
    "linear-and-named": (LINEAR_NAMED, set(), ""),
    "with-deploy": (WITH_DEPLOY, set(), ""),
    "reusable-scan": (REUSABLE_SCAN, set(), ""),
    "deploy-before-scan": (
        WITH_DEPLOY.replace("needs: [test, scan]", "needs: [test]"),
        {"pipeline-gates"},
        "does not wait for 'scan'",
    ),
    "test-after-lint-only": (
        ci((r"(  test:\n    )needs: build", r"\1needs: lint")),
        {"pipeline-gates"},
        "does not wait for 'build'",
    ),
    "test-if-always": (
        ci((r"(  test:\n    needs: build\n)", r"\1    if: always()\n")),
        {"pipeline-gates"},
        "undoes the `needs`",
    ),
    "scan-continue-on-error": (
        ci((r"(  scan:\n    needs: build\n)", r"\1    continue-on-error: true\n")),
        {"pipeline-gates"},
        "a gate that cannot close",
    ),
    "pytest-or-true": (
        ci((r"pytest -q", "pytest -q || true")),
        {"pipeline-gates"},
        "swallows its exit status",
    ),
    "push-only": (
        ci((r"^  pull_request:\n", "")),
        {"pipeline-gates"},
        "not on pull_request",
    ),
    "pull-request-target": (
        ci((r"^  pull_request:\n", "  pull_request_target:\n")),
        {"pipeline-gates"},
        "pull_request_target runs in the base branch",
    ),
    "no-scan-job": (
        ci((r"^  scan:\n(    .*\n|      .*\n|        .*\n|          .*\n)*", "")),
        {"pipeline-gates"},
        "No job for the scan",
    ),
    "cycle": (
        ci((r"(  lint:\n)", r"\1    needs: test\n")),
        {"pipeline-gates", "pipeline-budget"},
        "in a circle",
    ),
    "short-sha": (
        ci((r"@11bd71901bbe5b1630ceea73d27597364c9af683", "@11bd719")),
        {"pipeline-pinned"},
        "a short SHA is not enough",
    ),
    "postgres-major-tag": (
        ci((r"postgres:15\.10", "postgres:15")),
        {"pipeline-pinned"},
        "which moves to each new release",
    ),
    "postgres-untagged": (
        ci((r"postgres:15\.10", "postgres")),
        {"pipeline-pinned"},
        "has no tag",
    ),
    "ubuntu-latest": (
        ci((r"(  scan:\n    needs: build\n    runs-on: )ubuntu-24\.04", r"\1ubuntu-latest")),
        {"pipeline-pinned"},
        "ubuntu-latest went from 22.04 to 24.04",
    ),
    "docker-uses-latest": (
        ci((r"(      - run: pip install pip-audit)", r"      - uses: docker://alpine:latest\n\1")),
        {"pipeline-pinned"},
        "is tagged latest",
    ),
    "chain-over-budget": (
        ci((r"timeout-minutes: \d+", "timeout-minutes: 5")),
        {"pipeline-budget"},
        "longest chain of jobs",
    ),
    "timeout-as-text": (
        ci(
            (
                r"(  build:\n    needs: lint\n    runs-on: ubuntu-24.04\n    )timeout-minutes: 3",
                r"\1timeout-minutes: three",
            )
        ),
        {"pipeline-budget"},
        "timeout-minutes: 'three'",
    ),
    "not-yaml": (
        CI.replace("jobs:\n", "jobs:\n  - [\n"),
        set(PIPELINE_CHECKS),
        "not valid YAML",
    ),
}


@pytest.mark.parametrize("name", list(PIPELINES_JUDGED))
def test_other_pipelines_are_judged(name: str, lab: LabSpec) -> None:
    text, fails, phrase = PIPELINES_JUDGED[name]
    failed = judge(lab, PIPELINE_CHECKS, {WORKFLOW: text})
    assert set(failed) == fails, failed
    assert not phrase or any(phrase in m for m in failed.values()), failed
