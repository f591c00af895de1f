"""What a lab leaves on a server between commands: `lab stop` keeps the seeded copy for a
quick start, `lab stop --all` leaves nothing of this home's, even for labs stopped before."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import databases, lab_names, plain, sdtutor


def _roles(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def test_stop_all_removes_the_seeded_copy_of_a_lab_stopped_before(
    external_env: dict[str, str], system_postgres: str, home: Path, tmp_path: Path
) -> None:
    names = lab_names(home, "indexing")
    ws = tmp_path / "ws"
    try:
        started = sdtutor("lab", "start", "indexing", "-w", str(ws), env=external_env)
        assert started.returncode == 0, started.stderr
        stopped = sdtutor("lab", "stop", "indexing", env=external_env)
        assert stopped.returncode == 0, stopped.stderr
        # Stopped: the learner's database is gone, the seeded template stays for next time.
        assert names.database not in databases(system_postgres)
        assert names.template in databases(system_postgres)

        everything = sdtutor("lab", "stop", "--all", env=external_env)
        assert everything.returncode == 0, everything.stderr
        assert "indexing (its seeded copy)" in everything.stdout
        assert names.template not in databases(system_postgres)
        assert names.role not in _roles(system_postgres)
        assert ws.is_dir(), "the workspace is the learner's: --all keeps it"

        again = sdtutor("lab", "stop", "--all", env=external_env)
        assert again.returncode == 0 and "Nothing was running" in again.stdout
    finally:
        sdtutor("lab", "stop", "--all", env=external_env)


def test_a_quiet_apply_says_which_psql_commands_it_skipped(
    external_env: dict[str, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lab watch` and a restart apply files quietly; without psql installed, a `\\set`
    line in them is skipped and the learner is told, not left guessing."""
    from sdtutor.content.course import Course
    from sdtutor.lab import runtime, state
    from sdtutor.topics import resolve

    ws = tmp_path / "ws"
    try:
        assert sdtutor("lab", "start", "indexing", "-w", str(ws), env=external_env).returncode == 0
        (ws / "indexes.sql").write_text(
            "\\set ON_ERROR_STOP 1\nCREATE INDEX lifecycle_idx ON orders (user_id);\n"
        )
        for name, value in external_env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)  # no psql here
        topic = resolve("indexing")
        lab_state = state.load("indexing")
        assert lab_state is not None
        applied = runtime._apply_one(Course().lab(topic), lab_state, "indexes.sql")
        assert applied.ok and applied.statements == 1
        assert "\\set" in applied.note() and "line 1" in applied.note()
    finally:
        sdtutor("lab", "stop", "--all", env=external_env)


def test_a_broken_setup_step_is_named_by_file_and_line(
    system_postgres: str, tmp_path: Path
) -> None:
    from sdtutor.errors import LabError
    from sdtutor.services import postgres

    setup = tmp_path / "setup.sql"
    setup.write_text(
        "-- step: Creating the table\nCREATE TABLE t (id int);\n\n"
        "-- step: Loading rows\nINSERT INTO t VALUES (1);\nINSERT INTO missing VALUES (2);\n"
    )
    name = "sdtutor_test_broken_setup"
    postgres.create_database(system_postgres, name)
    try:
        with pytest.raises(LabError) as caught:
            postgres.run_setup(postgres.with_database(system_postgres, name), setup)
        message = caught.value.message
        assert message.startswith(f"{setup}:4: PostgreSQL refused 'Loading rows': ")
        assert message.endswith('relation "missing" does not exist'), message
    finally:
        postgres.drop_database(system_postgres, name)


def test_a_lab_missing_a_starting_file_is_refused_before_anything_starts(
    external_env: dict[str, str], system_postgres: str, tmp_path: Path
) -> None:
    import shutil

    from tests.conftest import REPO

    course = tmp_path / "course"
    (course / "lessons").mkdir(parents=True)
    shutil.copy(REPO / "lessons" / "07-indexing.md", course / "lessons")
    shutil.copytree(REPO / "labs" / "07-indexing", course / "labs" / "07-indexing")
    (course / "labs" / "07-indexing" / "README.md").unlink()
    env = {**external_env, "SDTUTOR_COURSE": str(course)}
    names = lab_names(Path(env["SDTUTOR_HOME"]), "indexing")
    started = sdtutor("lab", "start", "indexing", "-w", str(tmp_path / "ws"), env=env)
    assert started.returncode == 2, started.stdout + started.stderr
    assert "Traceback" not in started.stderr
    message = plain(started.stderr)
    assert "The lab's folder is incomplete" in message and "README.md is missing" in message
    assert "content check" in message
    assert not {names.database, names.template} & databases(system_postgres)
    assert names.role not in _roles(system_postgres)
    assert not (tmp_path / "ws").exists()


NO_SERVER_LAB = """\
format_version: 1
topic: indexing
title: A design judged from its functions
services: []
setup: {}
workspace: [plan.py]
time_limit: 10
checks:
  - id: doubles
    title: double() doubles
hints:
  - Multiply by two.
"""
NO_SERVER_CHECKS = """\
from sdtutor.lab.checks import CheckContext, Fail, Pass, check


@check("doubles")
def doubles(ctx: CheckContext) -> Pass:
    run = ctx.run("plan.py", "double", 21)
    if run.value != 42:
        raise Fail(f"double(21) returned {run.value!r}, not 42")
    return Pass("double(21) is 42")
"""


def test_a_lab_that_starts_no_server_runs_its_whole_cycle(
    external_env: dict[str, str], tmp_path: Path
) -> None:
    """`services: []`: start copies the workspace, shell says there is nothing to open,
    check runs the learner's code through the runner, stop leaves the workspace."""
    import shutil

    from tests.conftest import REPO

    course = tmp_path / "course"
    (course / "lessons").mkdir(parents=True)
    shutil.copy(REPO / "lessons" / "07-indexing.md", course / "lessons")
    lab = course / "labs" / "07-indexing"
    for folder in ("starter", "solution", "wrong/halves"):
        (lab / folder).mkdir(parents=True)
    (lab / "lab.yaml").write_text(NO_SERVER_LAB)
    (lab / "README.md").write_text("# Double it\n")
    (lab / "checks.py").write_text(NO_SERVER_CHECKS)
    (lab / "starter" / "plan.py").write_text("def double(x):\n    return x\n")
    (lab / "solution" / "plan.py").write_text("def double(x):\n    return 2 * x\n")
    (lab / "wrong" / "halves" / "plan.py").write_text("def double(x):\n    return x / 2\n")
    (lab / "wrong" / "halves" / "case.yaml").write_text(
        "summary: Halves.\nfails: [doubles]\nsays: ['not 42']\n"
    )
    env = {**external_env, "SDTUTOR_COURSE": str(course)}
    ws = tmp_path / "ws"

    started = sdtutor("lab", "start", "indexing", "-w", str(ws), env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "lab shell" not in plain(started.stdout), "no server: no prompt to offer"
    assert (ws / "plan.py").read_text() == "def double(x):\n    return x\n"

    shell = sdtutor("lab", "shell", "indexing", env=env)
    assert shell.returncode == 2 and "Traceback" not in shell.stderr
    assert "starts no server" in plain(shell.stderr)

    failed = sdtutor("lab", "check", "indexing", env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "double(21) returned 21, not 42" in plain(failed.stdout)
    (ws / "plan.py").write_text("def double(x):\n    return x + x\n")
    passed = sdtutor("lab", "check", "indexing", env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    proved = sdtutor("content", "check", str(course), "--lab", "indexing", env=env)
    assert proved.returncode == 0, proved.stdout + proved.stderr
    assert "is proved (3 cases" in plain(proved.stdout)
    # Any provider serves a lab with nothing to start: local (whose availability is asked
    # of no kind at all), and external without a single server URL.
    for provider in ("local", "external"):
        bare = {"SDTUTOR_HOME": env["SDTUTOR_HOME"], "SDTUTOR_PROVIDER": provider}
        again = sdtutor("content", "check", str(course), "--lab", "indexing", env=bare)
        assert again.returncode == 0, provider + again.stdout + again.stderr
        assert f"with the {provider} provider" in plain(again.stdout)

    stopped = sdtutor("lab", "stop", "indexing", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert (ws / "plan.py").is_file()
