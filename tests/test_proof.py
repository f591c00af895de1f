"""Lab proofs run their cases in parallel, each worker in a namespace of its own.

A tiny lab is built in tmp_path and proved on the machine's PostgreSQL with the external
provider. Each case's own SQL inserts a row naming the case into t; a check fails when
the case sees any other row, so cases that shared a database would fail. Checks log
when they ran and in which process to SDTUTOR_TEST_PROOF_LOG.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sdtutor.errors import LabError, UsageError
from sdtutor.lab.proof import CaseOutcome
from tests.conftest import REPO

LAB_YAML = """\
format_version: 1
topic: indexing
title: A tiny lab proved in parallel
services: [postgres]
setup:
  postgres: setup.sql
workspace: [case.sql]
apply: [case.sql]
time_limit: 5
checks:
  - id: isolated
    title: The case sees only its own row
  - id: has-index
    title: t has an index
hints:
  - Look at pg_indexes.
"""

CHECKS_PY = """\
import itertools
import os
import signal
import time
from pathlib import Path

from sdtutor.lab.checks import CannotCheck, Fail, check


def names(ctx):
    return [row[0] for row in ctx.query("SELECT name FROM t ORDER BY name")]


@check("isolated")
def isolated(ctx):
    started = time.time()
    seen = names(ctx)
    me = seen[0] if seen else "starter"
    log = Path(os.environ["SDTUTOR_TEST_PROOF_LOG"])
    (log / f"{me}.started").write_text(str(os.getpid()))
    (log / f"{me}.running").touch()
    # Other cases run meanwhile; in a shared database their rows would show up here.
    hold = time.monotonic() + (60 if os.environ.get("SDTUTOR_TEST_HOLD") else 0.5)
    while time.monotonic() < hold:
        time.sleep(0.05)
    seen += names(ctx)
    (log / me).write_text(f"{started} {time.time()} {os.getpid()}")
    (log / f"{me}.running").unlink()
    if len(set(seen)) > 1:
        raise Fail(f"This case sees other cases' rows: {sorted(set(seen))}")
    return "Only its own row."


# Cannot check while another case runs; at its first try in a worker, it waits for one.
def shy(log):

    def company():
        return [p for p in log.glob("*.running") if p.name != "a-shy.running"]

    with (log / "shy.attempts").open("a") as attempts:
        attempts.write("x")
    first = (log / "shy.attempts").read_text() == "x"
    if first and os.getpid() != int(os.environ["SDTUTOR_TEST_PID"]):
        until = time.monotonic() + 5
        while not company() and time.monotonic() < until:
            time.sleep(0.05)
    if company():  # as when cases together exhaust a server's connections
        raise CannotCheck(f"another case runs at the same time: {company()}")


@check("has-index")
def has_index(ctx):
    me = ctx.value("SELECT min(name) FROM t")
    if me == "crash":
        os._exit(7)
    if me == "hang":
        os.kill(os.getpid(), signal.SIGSTOP)
    if me == "a-shy":
        shy(Path(os.environ["SDTUTOR_TEST_PROOF_LOG"]))
    if not ctx.value("SELECT count(*) FROM pg_indexes WHERE tablename = 't'"):
        raise Fail("There is no index on t: add one.")
    return "The index is there."
"""

WRONG_NO_INDEX = "summary: No index.\nfails: [has-index]\nsays: [no index]\n"


def make_lab(root: Path, wrong: dict[str, tuple[str, str]]) -> Path:
    """A lab whose cases each insert their own name; `wrong` maps name -> (case.yaml, SQL)."""
    lab = root / "labs" / "07-indexing"
    for folder in ("starter", "solution"):
        (lab / folder).mkdir(parents=True)
    (lab / "lab.yaml").write_text(LAB_YAML)
    (lab / "README.md").write_text("# Index t\n")
    (lab / "checks.py").write_text(CHECKS_PY)
    (lab / "setup.sql").write_text("CREATE TABLE t (name text);\n")
    (lab / "starter" / "case.sql").write_text("-- your work here\n")
    (lab / "solution" / "case.sql").write_text(
        "INSERT INTO t VALUES ('solution');\nCREATE INDEX ON t (name);\n"
    )
    for name, (case_yaml, sql) in wrong.items():
        (lab / "wrong" / name).mkdir(parents=True)
        (lab / "wrong" / name / "case.yaml").write_text(case_yaml)
        (lab / "wrong" / name / "case.sql").write_text(sql)
    return lab


def no_index(name: str) -> tuple[str, str]:
    """A wrong case that inserts its row and drops the solution's index."""
    return WRONG_NO_INDEX, f"INSERT INTO t VALUES ('{name}');\nSELECT 1;\n"


@pytest.fixture
def proof_env(
    external_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The external provider on the machine's PostgreSQL; returns the checks' log folder."""
    for key, value in external_env.items():
        monkeypatch.setenv(key, value)
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("SDTUTOR_TEST_PROOF_LOG", str(log))
    monkeypatch.delenv("SDTUTOR_PROOF_JOBS", raising=False)
    monkeypatch.setenv("SDTUTOR_TEST_PID", str(os.getpid()))
    return log


def prove(lab_dir: Path, jobs: int | None) -> tuple[list[CaseOutcome], list[str]]:
    """Prove the lab; returns its outcomes and the cases in the order they were reported."""
    from sdtutor.content.loader import load_lab
    from sdtutor.lab.proof import prove_lab
    from sdtutor.providers.external import ExternalProvider

    reported: list[str] = []
    outcomes = prove_lab(
        load_lab(lab_dir), ExternalProvider(), lambda o: reported.append(o.case), jobs=jobs
    )
    return outcomes, reported


def leftovers(url: str) -> list[str]:
    """Databases and roles of this home on the server (the proof must leave none)."""
    import psycopg

    from sdtutor.services.names import home_id

    pattern = f"sdtutor\\_{home_id()}\\_%"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT 'database ' || datname FROM pg_database WHERE datname LIKE %s "
            "UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname LIKE %s",
            (pattern, pattern),
        ).fetchall()
    return sorted(str(r[0]) for r in rows)


def verdicts(outcomes: list[CaseOutcome]) -> list[tuple[str, bool, list[str], list[bool]]]:
    """What a user sees of each case: name, proved or not, problems, each check's verdict."""
    return [(o.case, o.ok, o.problems, [r.passed for r in o.results]) for o in outcomes]


def runs(log: Path) -> dict[str, tuple[float, float, int]]:
    """When each case's isolation check ran, and in which process."""
    out = {}
    for path in log.iterdir():
        if not path.suffix:
            start, end, pid = path.read_text().split()
            out[path.name] = (float(start), float(end), int(pid))
    return out


# ---------------------------------------------------------------- how many jobs


def test_jobs_come_from_the_argument_then_the_environment_then_three(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sdtutor.lab.proof import proof_jobs

    monkeypatch.delenv("SDTUTOR_PROOF_JOBS", raising=False)
    assert proof_jobs() == 3
    monkeypatch.setenv("SDTUTOR_PROOF_JOBS", "5")
    assert proof_jobs() == 5
    assert proof_jobs(1) == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SDTUTOR_PROOF_JOBS", bad)
        with pytest.raises(UsageError, match="SDTUTOR_PROOF_JOBS must be a whole number"):
            proof_jobs()


# ---------------------------------------------------------------- proofs


@pytest.mark.slow
def test_parallel_cases_give_the_same_verdicts_as_one_at_a_time_and_see_only_their_own_data(
    proof_env: Path, tmp_path: Path, system_postgres: str
) -> None:
    wrong = {name: no_index(name) for name in ("a", "a-shy", "b", "c", "d")}
    # A case whose case.yaml names the wrong check: its proof must report that, either way.
    wrong["misnamed"] = (
        "summary: Names the wrong check.\nfails: [isolated]\n",
        "INSERT INTO t VALUES ('misnamed');\n",
    )
    lab = make_lab(tmp_path / "course", wrong)

    one, order_one = prove(lab, jobs=1)
    assert leftovers(system_postgres) == []
    for path in proof_env.iterdir():
        path.unlink()
    many, order_many = prove(lab, jobs=3)
    assert leftovers(system_postgres) == []

    names = ("a", "a-shy", "b", "c", "d", "misnamed")
    cases = ["starter", "solution", *(f"wrong/{n}" for n in names)]
    assert order_one == order_many == cases
    assert verdicts(many) == verdicts(one)
    by_case = {v[0]: v for v in verdicts(many)}
    assert by_case["solution"][1:] == (True, [], [True, True])
    assert by_case["wrong/a"][1:] == (True, [], [True, False])
    assert by_case["wrong/misnamed"][1] is False
    assert "expected exactly ['isolated'] to fail" in by_case["wrong/misnamed"][2][0]
    # a-shy could not run beside other cases (the proof would stop), and was proved alone.
    assert by_case["wrong/a-shy"][1:3] == (True, [])
    assert (proof_env / "shy.attempts").read_text() == "xx"
    assert [o.case for o in many if o.alone] == ["wrong/a-shy", "wrong/misnamed"]
    assert not any(o.alone for o in one)
    # They did run at once, in several processes (and every case's isolation check passed).
    seen = runs(proof_env)
    assert set(seen) == {"starter", "solution", *names}
    assert len({pid for _, _, pid in seen.values()}) > 1
    assert os.getpid() not in {pid for _, _, pid in seen.values()}
    spans = sorted((start, end) for start, end, _ in seen.values())
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


@pytest.mark.slow
def test_a_worker_that_dies_or_hangs_fails_its_case_and_the_others_are_still_proved(
    proof_env: Path, tmp_path: Path, system_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdtutor.lab import proof

    # The case limit is the checks' deadline (2 checks x 5 s) plus this margin.
    monkeypatch.setattr(proof, "CASE_MARGIN", 3.0)
    wrong = {name: no_index(name) for name in ("crash", "hang", "x", "y")}
    lab = make_lab(tmp_path / "course", wrong)

    started = time.monotonic()
    outcomes, order = prove(lab, jobs=2)
    assert time.monotonic() - started < 60
    cases = ["starter", "solution", "wrong/crash", "wrong/hang", "wrong/x", "wrong/y"]
    assert order == cases  # reported in case order, though x and y ended before hang
    by_case = {v[0]: v for v in verdicts(outcomes)}
    assert by_case["wrong/crash"][1] is False
    assert by_case["wrong/crash"][2] == [
        "this case could not run: the worker process that ran it ended (exit code 7)"
    ]
    assert by_case["wrong/hang"][1] is False
    assert "did not finish within 13 s" in by_case["wrong/hang"][2][0]
    assert "its worker process was killed" in by_case["wrong/hang"][2][0]
    for case in ("starter", "solution", "wrong/x", "wrong/y"):
        assert by_case[case][1:3] == (True, []), by_case[case]
    assert leftovers(system_postgres) == []
    # The stopped worker is gone, not left behind.
    for path in proof_env.glob("hang.started"):
        pid = int(path.read_text())
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return "Z"


@pytest.mark.slow
def test_an_error_in_one_case_stops_the_proof_and_everything_is_removed(
    proof_env: Path, tmp_path: Path, system_postgres: str
) -> None:
    wrong = {name: no_index(name) for name in ("a", "b")}
    wrong["refused"] = (WRONG_NO_INDEX, "INSERT INTO t VALUES ('refused');\nSELEC 1;\n")
    lab = make_lab(tmp_path / "course", wrong)
    with pytest.raises(LabError, match=r"case\.sql:2") as raised:
        prove(lab, jobs=3)
    assert "syntax error" in str(raised.value)
    assert leftovers(system_postgres) == []


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_removes_everything(
    proof_env: Path, tmp_path: Path, system_postgres: str, external_env: dict[str, str]
) -> None:
    lab = make_lab(tmp_path / "course", {name: no_index(name) for name in ("a", "b", "c")})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
    env.update(external_env)
    env.update(
        {
            "SDTUTOR_TEST_PROOF_LOG": str(proof_env),
            "SDTUTOR_TEST_HOLD": "1",
            "SDTUTOR_PROOF_JOBS": "3",
            "NO_COLOR": "1",
        }
    )
    command = [sys.executable, "-m", "sdtutor", "content", "check", str(lab.parent.parent)]
    with subprocess.Popen(
        [*command, "--no-lint", "--lab", "7"],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        deadline = time.monotonic() + 60
        while len(list(proof_env.glob("*.started"))) < 3:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the cases never started"
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in proof_env.glob("*.started")]
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert leftovers(system_postgres) == []
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"
