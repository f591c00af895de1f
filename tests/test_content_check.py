"""`sdtutor content check --lab`, and labs proved in parallel, each in its own process.

A tiny course of two labs is built in tmp_path and proved with the external provider.
Nothing here depends on the names the proofs give their databases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LAB_YAML, REPO, plain, sdtutor

FIXTURE = REPO / "tests" / "fixtures" / "course"

CHECKS_PY = """\
import os
import time
from pathlib import Path

from sdtutor.lab.checks import Fail, check


@check("has-index")
def has_index(ctx):
    meeting = os.environ.get("SDTUTOR_TEST_RENDEZVOUS")
    if meeting:
        # Both labs' proofs must be running at once: each waits here for the other.
        (Path(meeting) / "{slug}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 15
        while len(list(Path(meeting).iterdir())) < 2:
            if time.monotonic() > deadline:
                raise Fail("the other lab's proof never ran at the same time as this one")
            time.sleep(0.05)
    if not ctx.value("SELECT count(*) FROM pg_indexes WHERE tablename = 't'"):
        raise Fail("There is no index on t: add one in indexes.sql.")
    return "The index is there."
"""


def make_lab(root: Path, dirname: str) -> Path:
    """A tiny complete lab: a table, a starter without an index, a solution with one."""
    slug = dirname.split("-", 1)[1]
    lab = root / "labs" / dirname
    for folder in ("starter", "solution", "wrong/no-index"):
        (lab / folder).mkdir(parents=True)
    (lab / "lab.yaml").write_text(LAB_YAML.replace("topic: indexing", f"topic: {slug}"))
    (lab / "README.md").write_text("# Add an index\n")
    (lab / "checks.py").write_text(CHECKS_PY.replace("{slug}", slug))
    (lab / "setup.sql").write_text("CREATE TABLE t (id int);\n")
    (lab / "starter" / "indexes.sql").write_text("-- your index here\n")
    (lab / "solution" / "indexes.sql").write_text("CREATE INDEX ON t (id);\n")
    (lab / "wrong" / "no-index" / "case.yaml").write_text(
        "summary: No index.\nfails: [has-index]\nsays: [no index]\n"
    )
    (lab / "wrong" / "no-index" / "indexes.sql").write_text("SELECT 1;\n")
    return lab


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course of two small independent labs."""
    root = tmp_path / "course"
    make_lab(root, "05-caching")
    make_lab(root, "08-rate-limiting")
    return root


def block_of(lines: list[str], dirname: str) -> list[str]:
    """A lab's block of output: its header line and the case lines after it."""
    start = next(i for i, line in enumerate(lines) if f"Proving lab {dirname}" in line)
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return lines[start:end]


# ---------------------------------------------------------------- usage errors


def test_an_unknown_lab_is_a_usage_error(home: Path) -> None:
    result = sdtutor(
        "content", "check", str(FIXTURE), "--lab", "nosuch", env={"SDTUTOR_HOME": str(home)}
    )
    assert result.returncode == 2
    assert "There is no topic called 'nosuch'." in plain(result.stderr)
    assert "Traceback" not in result.stderr
    assert "Lint:" not in result.stdout  # refused before any work


def test_a_topic_without_a_lab_in_this_course_is_a_usage_error(home: Path) -> None:
    result = sdtutor(
        "content", "check", str(FIXTURE), "--lab", "5", env={"SDTUTOR_HOME": str(home)}
    )
    assert result.returncode == 2
    message = plain(result.stderr)
    assert "has no lab for topic 5 (caching)" in message
    assert "That course has no labs yet" in message


def test_lab_with_no_labs_is_a_usage_error(home: Path, course: Path) -> None:
    result = sdtutor(
        "content",
        "check",
        str(course),
        "--lab",
        "caching",
        "--no-labs",
        env={"SDTUTOR_HOME": str(home)},
    )
    assert result.returncode == 2
    assert "--lab picks labs to prove" in plain(result.stderr)


def test_a_lab_with_lint_problems_is_not_proved(home: Path, course: Path) -> None:
    (course / "labs" / "05-caching" / "README.md").unlink()
    result = sdtutor(
        "content", "check", str(course), "--lab", "cach", env={"SDTUTOR_HOME": str(home)}
    )
    assert result.returncode == 1
    assert "README.md is missing" in result.stderr
    assert "05-caching is not proved: fix its lint problems first" in plain(result.stderr)
    assert "Proving lab" not in result.stdout


# ---------------------------------------------------------------- proofs


@pytest.mark.slow
def test_independent_labs_are_proved_at_once_in_separate_processes(
    course: Path, external_env: dict[str, str], tmp_path: Path
) -> None:
    meeting = tmp_path / "rendezvous"
    meeting.mkdir()
    env = {**external_env, "SDTUTOR_TEST_RENDEZVOUS": str(meeting)}
    result = sdtutor("content", "check", str(course), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lint: no problems" in result.stdout
    assert "Proving 2 labs, 2 at a time" in result.stdout
    # Each lab's checks ran in a process of its own, at the same time as the other's.
    pids = {p.name: p.read_text() for p in meeting.iterdir()}
    assert set(pids) == {"caching", "rate-limiting"}
    assert pids["caching"] != pids["rate-limiting"]
    # Each lab's output is one block, not interleaved with the other's.
    lines = result.stdout.splitlines()
    for dirname in ("05-caching", "08-rate-limiting"):
        block = block_of(lines, dirname)
        assert [line.split()[1] for line in block[1:4]] == ["starter", "solution", "wrong/no-index"]
        assert f"{dirname} is proved (3 cases" in block[-1]
    assert "2 labs in" in result.stdout and "every lab is proved" in result.stdout
    assert result.stdout.rstrip().endswith("The course is in order.")


@pytest.mark.slow
def test_lab_proves_only_the_labs_named(course: Path, external_env: dict[str, str]) -> None:
    result = sdtutor("content", "check", str(course), "--lab", "cach", env=external_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lint: no problems" in result.stdout
    assert "Proving lab 05-caching" in result.stdout
    assert "08-rate-limiting" not in result.stdout
    assert "05-caching is proved (3 cases" in result.stdout


@pytest.mark.slow
def test_a_failing_lab_fails_the_run_and_the_other_is_still_proved(
    course: Path, external_env: dict[str, str]
) -> None:
    # A solution that does not pass: the proof of that lab must say so.
    (course / "labs" / "08-rate-limiting" / "solution" / "indexes.sql").write_text("SELECT 2;\n")
    result = sdtutor(
        "content",
        "check",
        str(course),
        "--no-lint",
        "--lab",
        "5,8",
        "--jobs",
        "2",
        env=external_env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Lint:" not in result.stdout
    lines = result.stdout.splitlines()
    good = block_of(lines, "05-caching")
    assert "05-caching is proved" in good[-1]
    bad = "\n".join(block_of(lines, "08-rate-limiting") + lines)
    assert "✗ solution passes" in bad
    assert "check has-index fails: There is no index on t" in bad
    assert "some labs are not proved" in result.stdout


@pytest.mark.slow
def test_case_proves_only_the_cases_named_in_each_lab(
    course: Path, external_env: dict[str, str]
) -> None:
    args = ("content", "check", str(course), "--no-lint", "--lab", "5,8", "--jobs", "2")
    result = sdtutor(*args, "--case", "solution", "--case", "no-index", env=external_env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for dirname in ("05-caching", "08-rate-limiting"):
        block = "\n".join(block_of(lines, dirname))
        assert "✓ solution passes" in block and "✓ wrong/no-index fails" in block
        assert "starter" not in block
        assert f"{dirname} is proved (2 cases" in block


def test_an_unknown_case_is_a_usage_error_naming_the_labs_cases(
    course: Path, external_env: dict[str, str]
) -> None:
    result = sdtutor(
        "content", "check", str(course), "--lab", "cach", "--case", "nosuch", env=external_env
    )
    assert result.returncode == 2
    message = plain(result.stderr)
    assert "Lab 05-caching has no case 'nosuch'." in message
    assert "Its cases: starter, solution, wrong/no-index." in message
    assert "Proving" not in result.stdout  # refused before any work
