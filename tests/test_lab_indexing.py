"""The indexing lab end to end, through the real `sdtutor` command and real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO, databases, lab_names, plain, sdtutor

LAB = REPO / "labs" / "07-indexing"


def _info(env: dict[str, str]) -> dict:
    result = sdtutor("lab", "info", "indexing", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _check(env: dict[str, str]) -> tuple[int, dict]:
    result = sdtutor("lab", "check", "indexing", "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_local_lab_from_start_to_stop(local_home: Path, tmp_path: Path) -> None:
    env = {"SDTUTOR_HOME": str(local_home), "SDTUTOR_PROVIDER": "local"}
    workspace = tmp_path / "ws"
    started = sdtutor("lab", "start", "indexing", "--workspace", str(workspace), env=env)
    assert started.returncode == 0, started.stderr
    assert "Make the orders database fast" in started.stdout
    assert {p.name for p in workspace.iterdir()} >= {
        "README.md",
        "indexes.sql",
        "queries.sql",
        "solution.py",
    }

    info = _info(env)
    assert info["status"] == "running" and info["provider"] == "local"
    assert info["workspace"] == str(workspace.resolve())
    url = info["services"]["postgres"]["url"]
    names = lab_names(local_home, "indexing")
    assert url.startswith(f"postgresql://{names.role}:") and "@127.0.0.1:" in url
    assert url.endswith(f"/{names.database}")

    # The untouched starter fails every task but data-intact, and says why.
    code, report = _check(env)
    assert code == 1 and report["passed"] is False and report["topic"] == "indexing"
    by_id = {c["id"]: c for c in report["checks"]}
    assert set(by_id) == {
        "data-intact",
        "latest-orders",
        "pending-queue",
        "keyset-pagination",
        "batched-recent-orders",
    }
    assert by_id["data-intact"]["passed"]
    assert not by_id["latest-orders"]["passed"]
    assert "starts with user_id" in by_id["latest-orders"]["message"]
    assert any(
        e["kind"] == "plan" and "Seq Scan" in e["text"] for e in by_id["latest-orders"]["evidence"]
    )

    # The solution only opens once the lab has passed.
    locked = sdtutor("lab", "solution", "indexing", env=env)
    assert locked.returncode == 2 and "once your lab has passed" in plain(locked.stderr)

    # Work as a learner: edit the files, apply the DDL with the shell, check again.
    for path in (LAB / "solution").iterdir():
        shutil.copyfile(path, workspace / path.name)
    applied = sdtutor("lab", "shell", "indexing", "-f", "indexes.sql", env=env)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("CREATE INDEX") == 2
    code, report = _check(env)
    assert code == 0 and report["passed"], [c["message"] for c in report["checks"]]

    shown = sdtutor("lab", "solution", "indexing", env=env)
    assert shown.returncode == 0 and "CROSS JOIN LATERAL" in shown.stdout

    first, second = (sdtutor("lab", "hint", "indexing", env=env) for _ in range(2))
    assert "Hint 1 of 5" in first.stdout and "Hint 2 of 5" in second.stdout

    listing = json.loads(sdtutor("list", "--json", env=env).stdout)
    assert next(t for t in listing if t["slug"] == "indexing")["lab"] == "passed"

    # Reset: fresh data (the indexes are gone), starter files back, the learner's kept aside.
    reset = sdtutor("lab", "reset", "indexing", "--yes", env=env)
    assert reset.returncode == 0, reset.stderr
    backups = list((workspace / ".sdtutor-backup").iterdir())
    assert (
        len(backups) == 1
        and (backups[0] / "solution.py").read_text()
        == (LAB / "solution" / "solution.py").read_text()
    )
    assert (workspace / "queries.sql").read_text() == (LAB / "starter" / "queries.sql").read_text()
    code, report = _check(env)
    assert code == 1
    # Passing once is kept: a later failing check does not take it away.
    listing = json.loads(sdtutor("list", "--json", env=env).stdout)
    assert next(t for t in listing if t["slug"] == "indexing")["lab"] == "passed"

    # Stop: the database and the server go; the workspace stays.
    stopped = sdtutor("lab", "stop", "indexing", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert workspace.is_dir()
    assert _info(env)["status"] == "not started"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3)
    again = sdtutor("lab", "check", "indexing", env=env)
    assert again.returncode == 2 and "lab start indexing" in plain(again.stderr)


def test_external_provider_touches_only_its_database(
    external_env: dict[str, str], system_postgres: str, tmp_path: Path
) -> None:
    env = external_env
    names = lab_names(Path(env["SDTUTOR_HOME"]), "indexing")
    # Other homes' labs (the proofs running beside this test) come and go on this server:
    # judge this home's databases, and that every database not sdtutor's stays.
    mine = f"sdtutor_{names.home}_"

    def ours() -> set[str]:
        return {d for d in databases(system_postgres) if d.startswith(mine)}

    others = {d for d in databases(system_postgres) if not d.startswith("sdtutor_")}
    started = sdtutor("lab", "start", "indexing", "-w", str(tmp_path / "ws"), env=env)
    assert started.returncode == 0, started.stderr
    assert ours() == {names.database, names.template}
    info = _info(env)
    assert info["provider"] == "external"
    url = info["services"]["postgres"]["url"]
    assert url.endswith(f"/{names.database}") and url.startswith(f"postgresql://{names.role}:")
    code, _ = _check(env)
    assert code == 1
    # Stop removes the lab's database and keeps the seeded copy for a quick restart...
    assert sdtutor("lab", "stop", "indexing", env=env).returncode == 0
    assert ours() == {names.template}
    # ...which --purge removes too, with the lab's role.
    again = sdtutor("lab", "start", "indexing", "-w", str(tmp_path / "ws"), env=env)
    assert again.returncode == 0, again.stderr
    assert sdtutor("lab", "stop", "indexing", "--purge", env=env).returncode == 0
    assert ours() == set()
    assert others <= databases(system_postgres)
    with psycopg.connect(system_postgres) as conn:
        roles = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (names.role,))
        assert roles.fetchone() is None
    # The learner's server keeps running: external servers are not ours to stop.
    with psycopg.connect(system_postgres) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_unreachable_server_says_what_to_do(home: Path, tmp_path: Path) -> None:
    env = {
        "SDTUTOR_HOME": str(home),
        "SDTUTOR_PROVIDER": "external",
        "SDTUTOR_POSTGRES_URL": "postgresql://learner:s3cret@127.0.0.1:1/postgres",
    }
    result = sdtutor("lab", "start", "indexing", "-w", str(tmp_path / "ws"), env=env)
    assert result.returncode == 2
    assert "127.0.0.1:1" in plain(result.stderr)
    assert "SDTUTOR_POSTGRES_URL" in plain(result.stderr)
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ws").exists()
    assert _info(env)["status"] == "not started"


def test_unknown_topic_suggests_close_matches(home: Path) -> None:
    result = sdtutor("lab", "start", "indexng", env={"SDTUTOR_HOME": str(home)})
    assert result.returncode == 2
    assert "indexing" in plain(result.stderr) and "Traceback" not in result.stderr
    result = sdtutor("lab", "check", "c", env={"SDTUTOR_HOME": str(home)})
    assert result.returncode == 2
    for slug in ("caching", "ci-cd", "containers", "consistency"):
        assert slug in result.stderr


def _wait_for_database(url: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if name in databases(url):
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{name} never appeared")


@pytest.mark.parametrize("provider", ["external", "local"])
def test_ctrl_c_during_start_leaves_nothing_behind(
    provider: str, home: Path, system_postgres: str, tmp_path: Path
) -> None:
    # A home of its own, so nothing is seeded yet and the interrupt lands inside the seed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
    env.update({"SDTUTOR_PROVIDER": provider, "NO_COLOR": "1", "SDTUTOR_HOME": str(home)})
    if provider == "external":
        env["SDTUTOR_POSTGRES_URL"] = system_postgres
    names = lab_names(home, "indexing")
    workspace = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdtutor", "lab", "start", "indexing", "-w", str(workspace)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = system_postgres
    try:
        if provider == "local":
            server = _local_server_url(home, proc)
        _wait_for_database(server, names.template)
        time.sleep(0.3)  # well inside the seed
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if provider == "local":
            sdtutor("lab", "stop", "--all", env={"SDTUTOR_HOME": str(home)})
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Interrupted" in stderr
    assert not workspace.exists()
    assert not (home / "labs" / "indexing.json").exists()
    if provider == "external":
        assert not {names.database, names.template} & databases(system_postgres)
        with psycopg.connect(system_postgres) as conn:
            role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (names.role,))
            assert role.fetchone() is None, "the lab's role outlived an interrupted first start"
    else:
        # No lab uses the private server any more, so it was stopped too.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server, connect_timeout=3)


def _local_server_url(home: Path, proc: subprocess.Popen[str]) -> str:
    """The admin URL of the private server a `lab start` in `home` is bringing up."""
    from sdtutor.services.local import LocalPostgres

    deadline = time.monotonic() + 60
    os.environ["SDTUTOR_HOME"] = str(home)
    try:
        pg = LocalPostgres()
        while "indexing" not in pg.state().get("labs", []):
            assert proc.poll() is None and time.monotonic() < deadline, "no local server"
            time.sleep(0.05)
        return pg.admin_url()
    finally:
        os.environ.pop("SDTUTOR_HOME", None)


def test_second_terminal_is_told_to_wait(
    external_env: dict[str, str], system_postgres: str
) -> None:
    from sdtutor.lab import state

    env = external_env
    names = lab_names(Path(env["SDTUTOR_HOME"]), "indexing")
    with state.exclusive("indexing", "start"):
        result = sdtutor("lab", "start", "indexing", env=env)
    assert result.returncode == 2
    assert "busy" in plain(result.stderr) and "another terminal" in plain(result.stderr)
    assert names.database not in databases(system_postgres)


def test_a_broken_database_fails_checks_without_a_traceback(
    external_env: dict[str, str], tmp_path: Path
) -> None:
    env = external_env
    assert sdtutor("lab", "start", "indexing", "-w", str(tmp_path / "ws"), env=env).returncode == 0
    try:
        url = _info(env)["services"]["postgres"]["url"]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE orders")
        code, report = _check(env)
        assert code == 1
        broken = [c for c in report["checks"] if "could not finish" in c["message"]]
        assert broken and all("lab reset indexing" in c["message"] for c in broken)
        reset = sdtutor("lab", "reset", "indexing", "--yes", env=env)
        assert reset.returncode == 0, reset.stderr
        code, report = _check(env)
        assert not any("could not finish" in c["message"] for c in report["checks"])
    finally:
        sdtutor("lab", "stop", "indexing", "--purge", env=env)


def test_shell_file_reports_a_refused_statement_and_a_missing_file(
    external_env: dict[str, str], tmp_path: Path
) -> None:
    env = external_env
    workspace = tmp_path / "ws"
    assert sdtutor("lab", "start", "indexing", "-w", str(workspace), env=env).returncode == 0
    try:
        (workspace / "bad.sql").write_text(
            "-- one good statement, then a typo\n"
            "CREATE INDEX ok_idx ON orders (user_id);\n"
            "CREATE INDEX bad_idx ON orders (no_such_column);\n"
        )
        bad = sdtutor("lab", "shell", "indexing", "-f", "bad.sql", env=env)
        assert bad.returncode == 1, bad.stderr
        # psql runs the file where it is installed, sdtutor's own runner elsewhere: either
        # way the first statement ran, the refused one is named, and the stop is said.
        assert "CREATE INDEX" in bad.stdout
        assert "bad.sql:3" in plain(bad.stderr) and "no_such_column" in plain(bad.stderr)
        assert "were not run" in plain(bad.stderr)
        missing = sdtutor("lab", "shell", "indexing", "-f", "nowhere.sql", env=env)
        assert missing.returncode == 2 and "There is no file" in plain(missing.stderr)
        assert "Traceback" not in bad.stderr + missing.stderr
    finally:
        sdtutor("lab", "stop", "indexing", "--purge", env=env)


def test_a_start_after_stop_copies_the_seed_and_applies_the_learners_files_again(
    external_env: dict[str, str], tmp_path: Path
) -> None:
    env = external_env
    workspace = tmp_path / "ws"
    assert sdtutor("lab", "start", "indexing", "-w", str(workspace), env=env).returncode == 0
    try:
        shutil.copyfile(LAB / "solution" / "indexes.sql", workspace / "indexes.sql")
        assert sdtutor("lab", "stop", "indexing", env=env).returncode == 0
        again = sdtutor("lab", "start", "indexing", env=env)
        assert again.returncode == 0, again.stderr
        out = plain(again.stdout)
        # No seeding (a copy of the template), no task text again, the work kept.
        assert "Lab resumed" in out and "as you left it" in out
        assert "Applied your indexes.sql again (2 statements)" in out
        assert "Loading 199,500 orders" not in plain(again.stderr)
        _, report = _check(env)
        by_id = {c["id"]: c for c in report["checks"]}
        assert by_id["latest-orders"]["passed"] and by_id["pending-queue"]["passed"]
    finally:
        sdtutor("lab", "stop", "indexing", "--purge", env=env)
