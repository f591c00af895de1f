"""The labs as a learner works in them: applying a file again, `lab watch`, short check
output, hints, the solution piped. Real `sdtutor` subprocesses on the machine's
PostgreSQL (external provider); one indexing lab for the module, stopped at the end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from rich.console import Console

from sdtutor.cli.render import check_results
from sdtutor.lab.results import CheckResult
from tests.conftest import REPO, plain, sdtutor

LAB = REPO / "labs" / "07-indexing"
TITLES = {
    "data-intact": "The data is as seeded and every index is valid",
    "latest-orders": "A user's latest orders come from an index, with no sort",
}


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, system_postgres: str
) -> Iterator[tuple[dict[str, str], Path]]:
    """A started indexing lab: its environment and its workspace."""
    root = tmp_path_factory.mktemp("labux")
    env = {
        "SDTUTOR_HOME": str(root / "home"),
        "SDTUTOR_PROVIDER": "external",
        "SDTUTOR_POSTGRES_URL": system_postgres,
    }
    workspace = root / "ws"
    started = sdtutor("lab", "start", "indexing", "-w", str(workspace), env=env)
    assert started.returncode == 0, started.stderr
    yield env, workspace
    sdtutor("lab", "stop", "indexing", "--purge", env=env)


def _url(env: dict[str, str]) -> str:
    info = sdtutor("lab", "info", "indexing", "--json", env=env)
    return str(json.loads(info.stdout)["services"]["postgres"]["url"])


def _indexes(env: dict[str, str]) -> dict[str, str]:
    with psycopg.connect(_url(env)) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orders'"
        ).fetchall()
    return {name: definition for name, definition in rows}


def test_applying_an_edited_file_again_makes_the_database_hold_it(
    lab: tuple[dict[str, str], Path],
) -> None:
    env, workspace = lab
    indexes = workspace / "indexes.sql"
    indexes.write_text("CREATE INDEX mine ON orders (user_id);\n")
    first = sdtutor("lab", "shell", "indexing", "-f", "indexes.sql", env=env, cwd=workspace)
    assert first.returncode == 0, first.stderr
    assert "user_id)" in _indexes(env)["mine"]
    # The same name, another definition: what the learner means is "this index now".
    indexes.write_text("CREATE INDEX mine ON orders (user_id, created_at);\n")
    again = sdtutor("lab", "shell", "indexing", "-f", "indexes.sql", env=env, cwd=workspace)
    assert again.returncode == 0, again.stderr
    assert "already exists" not in again.stdout + again.stderr
    assert "fresh copy of the seeded data" in plain(again.stdout)
    assert "(user_id, created_at)" in _indexes(env)["mine"]

    # A refused statement is named with file:line, and what did not run is said.
    indexes.write_text(
        "CREATE INDEX one ON orders (user_id);\n"
        "CREATE INDEX two ON orders (no_such_column);\n"
        "CREATE INDEX three ON orders (status);\n"
    )
    bad = sdtutor("lab", "shell", "indexing", "-f", "indexes.sql", env=env, cwd=workspace)
    assert bad.returncode == 1
    said = plain(bad.stdout + bad.stderr)
    assert "indexes.sql:2" in said and "no_such_column" in said
    assert "were not run" in said and "Traceback" not in said
    names = set(_indexes(env))
    assert "one" in names and "three" not in names and "mine" not in names


def test_a_file_with_psql_meta_commands_runs_with_psql(
    lab: tuple[dict[str, str], Path],
) -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed here")
    env, workspace = lab
    (workspace / "look.sql").write_text("\\di\nSELECT 40 + 2 AS answer;\n")
    result = sdtutor("lab", "shell", "indexing", "-f", "look.sql", env=env, cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "orders_pkey" in result.stdout and "42" in result.stdout
    # The lab's password stays out of psql's argv (it is in a passfile): psql got a URL
    # without one, so `ps` shows none. The URL the learner uses does carry it.
    assert "password" not in result.stderr.lower()


def test_check_is_one_line_per_check_then_the_first_failure(
    lab: tuple[dict[str, str], Path],
) -> None:
    env, workspace = lab
    shutil.copyfile(LAB / "starter" / "indexes.sql", workspace / "indexes.sql")
    assert sdtutor("lab", "shell", "indexing", "-f", "indexes.sql", env=env).returncode == 0
    short = sdtutor("lab", "check", "indexing", env=env)
    assert short.returncode == 1, short.stderr
    lines = short.stdout.splitlines()
    assert f"✓ {TITLES['data-intact']}" in lines
    assert f"✗ {TITLES['latest-orders']}" in lines
    out = plain(short.stdout)
    assert out.count("First failure:") == 1
    assert "First failure: A user's latest orders" in out
    assert "No index on orders starts with user_id" in out  # the first failure's message
    assert "next_page still uses OFFSET" not in out  # a later failure's is left out
    assert "--verbose" in out
    verbose = sdtutor("lab", "check", "indexing", "--verbose", env=env)
    assert "next_page still uses OFFSET" in plain(verbose.stdout)
    assert "First failure" not in verbose.stdout
    shape = json.loads(sdtutor("lab", "check", "indexing", "--json", env=env).stdout)
    assert set(shape) >= {"topic", "passed", "checks"}
    assert set(shape["checks"][0]) >= {"id", "title", "passed", "message"}


def test_timeouts_and_checks_not_run_are_not_shown_as_failures() -> None:
    results = [
        CheckResult("a", "First", True, "fine"),
        CheckResult("b", "Second", False, "it read 900 buffers"),
        CheckResult("c", "Third", False, "still running at the deadline", status="timeout"),
        CheckResult("d", "Fourth", False, "not started", status="not run"),
        CheckResult("e", "Fifth", False, "KeyError: x", status="error"),
    ]
    console = Console(width=80, record=True, no_color=True)
    console.print(check_results(results, topic="indexing"))
    lines = console.export_text().splitlines()
    assert "✓ First" in lines and "✗ Second" in lines
    assert any(line.startswith("◷ Third") and "ran out of time" in line for line in lines)
    assert any(line.startswith("· Fourth") and "not run" in line for line in lines)
    assert any(line.startswith("! Fifth") and "could not finish" in line for line in lines)
    assert not any(line.startswith("✗ ") for line in lines if "Second" not in line)
    # A timeout first in line is shown as what it is, not as a failure.
    console = Console(width=80, record=True, no_color=True)
    console.print(check_results(results[2:], topic="indexing"))
    assert "Ran out of time: Third" in console.export_text()


def test_check_of_a_lab_not_running_says_so_at_once(tmp_path: Path) -> None:
    env = {"SDTUTOR_HOME": str(tmp_path / "home"), "SDTUTOR_PROVIDER": "external"}
    result = sdtutor("lab", "check", "indexing", env=env)
    assert result.returncode == 2
    assert "not running" in plain(result.stderr)
    assert "Checking" not in result.stdout + result.stderr


def test_hint_all_repeats_the_hints_given_with_code_as_code(
    lab: tuple[dict[str, str], Path],
) -> None:
    env, _ = lab
    none = sdtutor("lab", "hint", "indexing", "--all", env=env)
    assert none.returncode == 0 and "No hints given yet" in plain(none.stdout)
    for _ in range(2):
        assert sdtutor("lab", "hint", "indexing", env=env).returncode == 0
    shown = sdtutor("lab", "hint", "indexing", "--all", env=env)
    out = plain(shown.stdout)
    assert "Hint 1 of 5" in out and "Hint 2 of 5" in out and "Hint 3 of 5" not in out
    # The first hint names `sdtutor lab shell indexing` in backticks: rendered, not raw.
    assert "sdtutor lab shell indexing" in out and "`sdtutor lab shell" not in out
    again = sdtutor("lab", "hint", "indexing", "--all", env=env)
    assert "Hint 3 of 5" not in plain(again.stdout)  # --all gives no new hint


def test_watch_applies_a_changed_file_before_checking(
    lab: tuple[dict[str, str], Path],
) -> None:
    env, workspace = lab
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
    full_env.update({"COLUMNS": "100", "NO_COLOR": "1", **env})
    watcher = subprocess.Popen(
        [sys.executable, "-m", "sdtutor", "lab", "watch", "indexing", "--interval", "0.2"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []

    def wait_for(text: str, limit: float = 90) -> None:
        assert watcher.stdout is not None
        deadline, start = time.monotonic() + limit, len(seen)
        while time.monotonic() < deadline:
            line = watcher.stdout.readline()
            if not line:
                break
            seen.append(line)
            if text in plain("".join(seen[start:][-4:])):
                return
        pytest.fail(f"`lab watch` never said {text!r}: {''.join(seen)[-2000:]}")

    try:
        wait_for("checks pass")
        shutil.copyfile(LAB / "solution" / "indexes.sql", workspace / "indexes.sql")
        wait_for("Applied your indexes.sql (2 statements)")
        wait_for("checks pass")
        assert f"✓ {TITLES['latest-orders']}" in "".join(seen)
        with (workspace / "indexes.sql").open("a") as fh:
            fh.write("CREATE INDEX oops ON orders (no_such_column);\n")
        wait_for("did not all apply")
        assert "indexes.sql:8" in plain("".join(seen[-4:]))
        wait_for("checks pass")
    finally:
        watcher.send_signal(signal.SIGINT)
        out, _ = watcher.communicate(timeout=30)
    assert "Stopped watching" in out and "Traceback" not in "".join(seen) + out


def test_solution_piped_prints_the_files_as_they_are(lab: tuple[dict[str, str], Path]) -> None:
    env, workspace = lab
    for name in ("indexes.sql", "queries.sql", "solution.py"):
        shutil.copyfile(LAB / "solution" / name, workspace / name)
    assert sdtutor("lab", "shell", "indexing", "-f", "indexes.sql", env=env).returncode == 0
    checked = sdtutor("lab", "check", "indexing", env=env)
    assert checked.returncode == 0, checked.stdout
    piped = sdtutor("lab", "solution", "indexing", env=env)
    assert piped.returncode == 0, piped.stderr
    for path in sorted((LAB / "solution").iterdir()):
        assert f"==> {path.name} <==\n{path.read_text()}" in piped.stdout
    assert "│" not in piped.stdout and "\x1b[" not in piped.stdout
