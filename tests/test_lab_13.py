"""Lab 13 (ci-cd): answers the proof's cases do not hold, judged right.

The lab starts no server: flags.py and canary.py run through the runner (one learner
process per set of answers), and the workflow is read as YAML by the checker. Other
correct answers must pass: other hashes and bucket sizes (md5, keyed blake2, crc32), a
seeded draw that does not depend on the percentage, a flags.py that forks a child; for
the canary a Poisson tail, Wilson intervals, a shrinking margin, Fisher's exact test, a
Bayesian comparison with flat priors, the hint's plain z-test at one-sided 5% (the
recorded runs are also held to agree under each of these), one that prints a flood,
and answers in capitals; workflows with a linear chain, a deploy job, jobs known by
their names or by their tools (ruff, typeCheck, docker-build, unit-tests, bandit,
codeql, trivy), a docs job aside, two builds, a deploy guarded by !failure(), matrix
runners, images by digest, a reusable workflow. Other wrong ones must fail and say why:
a random draw per call, a salt drawn at start-up, a home-made hash, `<=` at 0%, the
percentage as a fraction, a window rotated per flag, answers that are not booleans,
code that hangs; a canary that ignores latency, judges latency by a fixed number,
divides by a baseline of zero, trusts a Poisson tail at a baseline rate of 0, rolls back
a better canary, waits for errors or counts the baseline's requests; workflows that
deploy before the scan or the integration tests, scan before the build, let a red job
through (if: always() or !cancelled(), continue-on-error on a job or a scan step,
`|| true`, `|| echo`, `|| :`), trigger on push or pull_request_target, pin to short
SHAs or moving tags, run on ubuntu-latest (also through a matrix or a runner group),
need an unknown job, or chain more than ten minutes of timeouts (a slow setup job
included). The proof runs in test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

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
    lab: LabSpec, check_ids: tuple[str, ...], files: dict[str, str], time_limit: float = 30
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

CRC32 = """
import zlib


def is_enabled(flag, user_id, percent):
    return zlib.crc32(f"{flag}:{user_id}".encode()) % 1000 < percent * 10
"""

SALT_PER_PROCESS = """
import hashlib
import os

SALT = os.urandom(8)  # "to make the buckets unguessable": new on every start


def is_enabled(flag, user_id, percent):
    digest = hashlib.sha256(SALT + f"{flag}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent
"""

SUM_OF_CODES = """
def is_enabled(flag, user_id, percent):
    # A home-made hash: the sum of the characters' codes.
    return sum(map(ord, f"{flag}:{user_id}")) % 100 < percent
"""

PERCENT_AS_FRACTION = """
import hashlib


def is_enabled(flag, user_id, percent):
    digest = hashlib.sha256(f"{flag}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < percent  # percent as 0..1
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
    "crc32": (CRC32, set(), ""),
    "salt-per-process": (SALT_PER_PROCESS, {"flag-stable"}, "a salt or seed drawn"),
    "sum-of-codes": (SUM_OF_CODES, {"flag-share", "flag-independent"}, "spread evenly"),
    "percent-as-fraction": (PERCENT_AS_FRACTION, {"flag-share"}, "At 1%, 100.00%"),
}


def test_the_flag_variants_differ_from_the_solution() -> None:
    assert SOLUTION["flags.py"] != NOT_A_BOOL
    assert AT_OR_BELOW != MD5_100


@pytest.mark.parametrize("name", list(FLAGS_JUDGED))
def test_other_flags_are_judged(name: str, lab: LabSpec) -> None:
    text, fails, phrase = FLAGS_JUDGED[name]
    failed = judge(lab, FLAG_CHECKS, {"flags.py": text}, 2 if name == "hangs" else 30)
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

PRINTS_A_FLOOD = SOLUTION["canary.py"].replace(
    '    if canary["requests"] < MIN_REQUESTS:',
    '    print("window:", baseline, canary, "." * 200_000)\n'
    '    if canary["requests"] < MIN_REQUESTS:',
)

NONE_FOR_HOLD = SOLUTION["canary.py"].replace('return "hold"', "return None")

CANARY_HANGS = """
import time


def decide(baseline, canary):
    time.sleep(3600)
"""

FISHER_EXACT = """
from math import exp, lgamma


def _log_choose(n, k):
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def _p_value(baseline, canary):
    # One-sided Fisher exact test: P(the canary draws this many of all the errors or more).
    n1, n2 = baseline["requests"], canary["requests"]
    k, x = baseline["errors"] + canary["errors"], canary["errors"]
    whole = _log_choose(n1 + n2, k)
    return sum(
        exp(_log_choose(n2, i) + _log_choose(n1, k - i) - whole)
        for i in range(x, min(k, n2) + 1)
        if k - i <= n1
    )


def decide(baseline, canary):
    if canary["requests"] < 200:
        return "hold"
    if _p_value(baseline, canary) < 0.01 or canary["p99_ms"] > 1.3 * baseline["p99_ms"]:
        return "rollback"
    return "promote"
"""

BAYES_FLAT_PRIORS = """
from math import exp, lgamma, log


def _log_beta(a, b):
    return lgamma(a) + lgamma(b) - lgamma(a + b)


def prob_worse(baseline, canary):
    # P(canary's error rate > baseline's) with Beta(1, 1) priors, in closed form.
    a1, b1 = baseline["errors"] + 1, baseline["requests"] - baseline["errors"] + 1
    a2, b2 = canary["errors"] + 1, canary["requests"] - canary["errors"] + 1
    return sum(
        exp(_log_beta(a1 + i, b1 + b2) - log(b2 + i) - _log_beta(1 + i, b2) - _log_beta(a1, b1))
        for i in range(a2)
    )


def decide(baseline, canary):
    if canary["requests"] < 300:
        return "hold"
    if prob_worse(baseline, canary) > 0.95:
        return "rollback"
    if canary["p99_ms"] > baseline["p99_ms"] + 50:
        return "rollback"
    return "promote"
"""

PLAIN_Z_ONE_SIDED = """
import math


def decide(baseline, canary):
    n1, n2 = baseline["requests"], canary["requests"]
    if n2 < 200:
        return "hold"
    p = (baseline["errors"] + canary["errors"]) / (n1 + n2)  # the hint's pooled rate
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)) or 1e-9
    z = (canary["errors"] / n2 - baseline["errors"] / n1) / se
    if z > 1.645 or canary["p99_ms"] - baseline["p99_ms"] > 20:
        return "rollback"
    return "promote"
"""

POISSON_RAW_RATE = POISSON_TAIL.replace(
    'rate = (baseline["errors"] + 1) / (baseline["requests"] + 1)',
    'rate = baseline["errors"] / baseline["requests"]',
)

TWO_SIDED = SOLUTION["canary.py"].replace(
    "if error_z(baseline, canary) > Z_LIMIT:", "if abs(error_z(baseline, canary)) > Z_LIMIT:"
)

MINIMUM_ON_BASELINE = SOLUTION["canary.py"].replace(
    'if canary["requests"] < MIN_REQUESTS:', 'if baseline["requests"] < MIN_REQUESTS:'
)

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
    "fisher-exact": (FISHER_EXACT, set(), ""),
    "prints-a-flood": (PRINTS_A_FLOOD, set(), ""),
    "bayes-flat-priors": (BAYES_FLAT_PRIORS, set(), ""),
    "plain-z-one-sided": (PLAIN_Z_ONE_SIDED, set(), ""),
    "poisson-raw-rate": (
        POISSON_RAW_RATE,
        {"canary-promote"},
        "against a baseline with no errors any error at all looks infinitely worse",
    ),
    "two-sided": (TWO_SIDED, {"canary-promote"}, "a one-sided test"),
    "minimum-on-baseline": (MINIMUM_ON_BASELINE, {"canary-waits"}, "that is chance"),
}


def test_the_canary_variants_differ_from_the_solution() -> None:
    for text in (ERRORS_ONLY, FIXED_LATENCY, DIVIDES_BY_BASELINE, WAITS_FOR_ERRORS, TWO_SIDED):
        assert text != SOLUTION["canary.py"]
    assert SOLUTION["canary.py"] != NONE_FOR_HOLD != MINIMUM_ON_BASELINE
    assert POISSON_RAW_RATE != POISSON_TAIL


def _lab_checks() -> Any:
    """The lab's checks.py as a module (the checker's own code, for its recorded runs)."""
    spec = importlib.util.spec_from_file_location("lab13_checks", LAB_DIR / "checks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _z(baseline: dict[str, Any], canary: dict[str, Any]) -> float:
    n1, n2, e1, e2 = baseline["requests"], canary["requests"], baseline["errors"], canary["errors"]
    p = (e1 + e2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return (e2 / n2 - e1 / n1) / se if se else 0.0


def _wilson(errors: int, n: int, z: float) -> tuple[float, float]:
    p, d = errors / n, 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return centre - half, centre + half


def _bayes_worse(baseline: dict[str, Any], canary: dict[str, Any]) -> float:
    """P(canary's rate > baseline's), Beta(1, 1) priors (Evan Miller's closed form)."""

    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    a1, b1 = baseline["errors"] + 1, baseline["requests"] - baseline["errors"] + 1
    a2, b2 = canary["errors"] + 1, canary["requests"] - canary["errors"] + 1
    return sum(
        math.exp(
            log_beta(a1 + i, b1 + b2) - math.log(b2 + i) - log_beta(1 + i, b2) - log_beta(a1, b1)
        )
        for i in range(a2)
    )


def test_the_recorded_runs_agree_under_every_sound_test() -> None:
    """A learner may judge errors with any sound test: each recorded run must come out
    the same way under a z-test, Fisher's exact test, Wilson intervals and a Bayesian
    comparison, at the thresholds people use (one-sided 5% up to 3 standard errors)."""
    checks = _lab_checks()
    for run in checks.RUNS:
        b, c, want = run["baseline"], run["canary"], run["want"]
        if run["check"] == "canary-promote":
            assert "rollback" not in want
            assert checks._chance(b, c) >= 0.2, run["name"]
            assert _z(b, c) < 1.645, run["name"]
            assert _bayes_worse(b, c) < 0.95, run["name"]
            assert (
                _wilson(c["errors"], c["requests"], 1.96)[0]
                <= _wilson(b["errors"], b["requests"], 1.96)[1]
            ), run["name"]
            slower = c["p99_ms"] - b["p99_ms"]
            assert slower <= 10 and slower <= 0.025 * b["p99_ms"], run["name"]
        elif run["check"] == "canary-rollback" and c["p99_ms"] <= 2 * b["p99_ms"]:
            assert want == ("rollback",)
            assert checks._chance(b, c) < 1e-6, run["name"]
            assert _z(b, c) > 3 and _bayes_worse(b, c) > 0.999, run["name"]
            assert (
                _wilson(c["errors"], c["requests"], 3)[0]
                > _wilson(b["errors"], b["requests"], 3)[1]
            ), run["name"]
        elif run["check"] == "canary-waits":
            assert want == ("hold",) and c["requests"] < 50, run["name"]


@pytest.mark.parametrize("name", list(CANARIES_JUDGED))
def test_other_canary_gates_are_judged(name: str, lab: LabSpec) -> None:
    text, fails, phrase = CANARIES_JUDGED[name]
    failed = judge(lab, CANARY_CHECKS, {"canary.py": text}, 2 if name == "hangs" else 30)
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


def _step(uses: str) -> str:
    return f"{{uses: {uses}}}"


SETUP_PYTHON = "actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b"
TRIVY = "aquasecurity/trivy-action@18f2510ee396bbf400402947b394f2dd8c87dbb0"
SARIF = "github/codeql-action/upload-sarif@48ab28a6f5dbc2a99bf1e0131198dd8f1df78169"
CODEQL = "github/codeql-action/analyze@48ab28a6f5dbc2a99bf1e0131198dd8f1df78169"

TOOL_NAMES = f"""
on:
  pull_request:
    branches: [main]
jobs:
  ruff:
    runs-on: ubuntu-24.04
    timeout-minutes: 1
    steps: [{_step(CHECKOUT)}, {{run: ruff check .}}]
  typeCheck:
    runs-on: ubuntu-24.04
    timeout-minutes: 2
    steps: [{_step(CHECKOUT)}, {_step(SETUP_PYTHON)}, {{run: mypy .}}]
  docker-build:
    needs: [ruff, typeCheck]
    runs-on: ubuntu-24.04
    timeout-minutes: 3
    steps: [{_step(CHECKOUT)}, {{run: docker build -t app .}}]
  unit-tests:
    needs: docker-build
    runs-on: ${{{{ matrix.os }}}}
    strategy:
      matrix:
        os: [ubuntu-24.04, ubuntu-22.04]
    timeout-minutes: 4
    steps: [{_step(CHECKOUT)}, {{run: pytest -q}}]
  bandit:
    needs: docker-build
    runs-on: ubuntu-24.04
    timeout-minutes: 2
    steps: [{_step(CHECKOUT)}, {{run: bandit -r src}}]
  codeql:
    needs: docker-build
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps: [{_step(CHECKOUT)}, {_step(CODEQL)}]
  trivy:
    needs: [docker-build]
    runs-on: ubuntu-24.04
    timeout-minutes: 3
    steps:
      - uses: {TRIVY}
        with: {{image-ref: app, exit-code: "1"}}
      - uses: {SARIF}
        continue-on-error: true
  docs:
    runs-on: ubuntu-24.04
    timeout-minutes: 3
    steps: [{_step(CHECKOUT)}, {{run: mkdocs build --strict}}]
"""

TWO_BUILDS = f"""
on: [pull_request]
jobs:
  lint:
    runs-on: ubuntu-24.04
    timeout-minutes: 1
    steps: [{_step(CHECKOUT)}, {{run: ruff check .}}]
  build-wheel:
    needs: lint
    runs-on: ubuntu-24.04
    timeout-minutes: 2
    steps: [{_step(CHECKOUT)}, {{run: python -m build}}]
  a:
    name: Build latest image
    needs: lint
    runs-on: ubuntu-24.04
    timeout-minutes: 3
    steps: [{_step(CHECKOUT)}, {{run: docker build -t app:latest .}}]
  unit-tests:
    needs: build-wheel
    runs-on: ubuntu-24.04
    timeout-minutes: 4
    steps: [{_step(CHECKOUT)}, {{run: pytest -q}}]
  image-scan:
    needs: a
    runs-on: ubuntu-24.04
    timeout-minutes: 3
    steps: [{{uses: {TRIVY}, with: {{exit-code: "1"}}}}]
  deploy:
    needs: [unit-tests, image-scan]
    if: ${{{{ !failure() && !cancelled() && github.ref == 'refs/heads/main' }}}}
    runs-on: ubuntu-24.04
    timeout-minutes: 10
    steps: [{{run: ./deploy.sh}}]
"""

WITH_INTEGRATION = (
    WITH_DEPLOY.replace("needs: [test, scan]", "needs: [test, integration, scan]")
    + """
  integration:
    needs: build
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - run: pytest -q tests/integration
"""
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
    "tool-names-and-docs": (TOOL_NAMES, set(), ""),
    "two-builds-and-a-guarded-deploy": (TWO_BUILDS, set(), ""),
    "with-integration-tests": (WITH_INTEGRATION, set(), ""),
    "deploy-skips-integration-tests": (
        WITH_INTEGRATION.replace("needs: [test, integration, scan]", "needs: [test, scan]"),
        {"pipeline-gates"},
        "does not wait for 'integration'",
    ),
    "scan-before-the-build": (
        TOOL_NAMES.replace("  bandit:\n    needs: docker-build", "  bandit:\n    needs: ruff"),
        {"pipeline-gates"},
        "Job 'bandit' (scan) does not wait for 'docker-build' (build)",
    ),
    "trivy-may-fail": (
        TOOL_NAMES.replace('with: {image-ref: app, exit-code: "1"}', "continue-on-error: true"),
        {"pipeline-gates"},
        "A step of job 'trivy' has continue-on-error: true (`aquasecurity/trivy-action@",
    ),
    "deploy-if-not-cancelled": (
        TWO_BUILDS.replace("!failure() && !cancelled() && ", "!cancelled() && "),
        {"pipeline-gates"},
        "undoes the `needs`",
    ),
    "pytest-or-echo": (
        ci((r"pytest -q", "pytest -q || echo 'tests failed'")),
        {"pipeline-gates"},
        "swallows its exit status",
    ),
    "pytest-or-colon": (
        ci((r"- run: (pip install -r requirements.txt && pytest -q)", r"- run: '\1 || :'")),
        {"pipeline-gates"},
        "swallows its exit status",
    ),
    "matrix-of-latest": (
        TOOL_NAMES.replace("os: [ubuntu-24.04, ubuntu-22.04]", "os: [ubuntu-latest, macos-14]"),
        {"pipeline-pinned"},
        "runs on 'ubuntu-latest'",
    ),
    "runner-group-latest": (
        ci(
            (
                r"(  lint:\n    )runs-on: ubuntu-24.04",
                r"\1runs-on: {group: big, labels: [ubuntu-latest]}",
            )
        ),
        {"pipeline-pinned"},
        "runs on 'ubuntu-latest'",
    ),
    "slow-setup-first": (
        TOOL_NAMES.replace("  ruff:\n", "  ruff:\n    needs: setup\n").replace(
            "  docs:\n",
            "  setup:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 6\n"
            "    steps: [{run: make deps}]\n  docs:\n",
        ),
        {"pipeline-budget"},
        "setup (6) -> ruff (1) -> docker-build (3)",
    ),
    "needs-a-number": (
        ci((r"(  build:\n    )needs: lint", r"\1needs: 5")),
        {"pipeline-gates", "pipeline-budget"},
        "needs '5', which is not a job",
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
