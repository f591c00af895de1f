"""The learner runner against hostile code, every client API, workers and services.

Learner files come from tests/runner_fixtures/ and are copied into tmp_path. The real
PostgreSQL, Redis and RabbitMQ of the machine are used; Redis keys live under
`sdtutor-test-proxy:` and are deleted.
"""

from __future__ import annotations

import http.client
import os
import resource
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor.errors import LabError
from sdtutor.lab.proxy import Proxy, upstream_of
from sdtutor.lab.runner import (
    Limits,
    Service,
    current_isolation,
    run_function,
    run_workers,
    start_service,
)

FIXTURES = Path(__file__).parent / "runner_fixtures"
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
KEY = "sdtutor-test-proxy:runner:"
PG = {"postgres": Service("postgres", PG_URL)}
AS_ROOT = os.geteuid() == 0 and current_isolation().uid is not None


def workspace(tmp_path: Path, *names: str) -> Path:
    """A workspace holding these fixture files (a folder name copies its files)."""
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    for name in names:
        source = FIXTURES / name
        if source.is_dir():
            for file in source.iterdir():
                shutil.copy(file, ws / file.name)
        else:
            shutil.copy(source, ws / source.name)
    return ws


def tagged_processes(mark: str) -> list[int]:
    """Processes whose environment carries `mark`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if mark.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    return workspace(tmp_path, "hostile.py")


# ---------------------------------------------------------------- results and isolation


def test_a_trivial_function_returns_its_value_quickly(hostile: Path) -> None:
    started = time.perf_counter()
    run = run_function(
        hostile, "hostile.py", "identity", services={}, args=[1, "a"], kwargs={"k": [2]}
    )
    assert run.ok, run.error
    assert run.value == {"args": [1, "a"], "kwargs": {"k": [2]}}
    assert run.exit_code == 0 and run.killed == 0 and run.limit == ""
    assert time.perf_counter() - started < 3


def test_values_are_normalised_to_json(hostile: Path) -> None:
    run = run_function(hostile, "hostile.py", "values", services={})
    assert run.ok, run.error
    assert run.value == {
        "decimal": "1.50",
        "when": "2024-05-01T12:30:00",
        "day": "2024-05-01",
        "tuple": [1, 2],
        "uuid": "00000000-0000-0000-0000-000000000001",
        "point": [3, 4],
        "1": "int key",
        "set": "{1}",
        "nan": "nan",
    }


def test_environment_is_minimal_and_isolated(
    hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDTUTOR_POSTGRES_URL", "postgresql://admin:secret@elsewhere/x")
    monkeypatch.setenv("PYTHONPATH", str(hostile))
    run = run_function(
        hostile,
        "hostile.py",
        "environment",
        services={"primary": Service("postgres", PG_URL), "cache": Service("redis", REDIS_URL)},
        env={"REDIS_KEY_PREFIX": KEY},
    )
    assert run.ok, run.error
    env = run.value["env"]
    assert "SDTUTOR_POSTGRES_URL" not in env and "PYTHONPATH" not in env
    assert env["DATABASE_URL"] == env["SDTUTOR_URL_PRIMARY"]
    assert ":5432" not in env["DATABASE_URL"] and env["DATABASE_URL"].startswith("postgresql://")
    assert ":6379" not in env["REDIS_URL"] and env["REDIS_URL"] == env["SDTUTOR_URL_CACHE"]
    assert env["REDIS_KEY_PREFIX"] == KEY
    assert run.value["flags"] == 1  # python -I
    assert run.value["stdin"] == ""  # the spec channel is closed before learner code runs
    assert run.value["path"][-1] == run.value["cwd"]  # the workspace comes last
    assert Path(run.value["cwd"]) != hostile  # a private copy
    if AS_ROOT:
        assert run.value["uid"] == current_isolation().uid


def test_workspace_files_cannot_shadow_the_harness_or_libraries(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "shadow")
    run = run_function(ws, "solution.py", "where", services=PG, clients=["postgres"])
    assert run.ok, run.error + run.output
    assert run.value["helper"] == 42  # learner modules still import each other
    assert run.value["dumps"] == "[1]"
    assert run.value["json"].endswith("/lib/python3.11/json/__init__.py")
    assert run.value["psycopg"].endswith("site-packages/psycopg/__init__.py")
    assert run.server["postgres"].statements == ["SELECT 1"]


def test_lab_files_are_added_beside_the_learners_and_win(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "pipeline.py").write_text("def handle(x):\n    return x + 1\n")
    (ws / "lab_harness.py").write_text("def check():\n    return 'the learner wrote this'\n")
    lab = "import pipeline\n\n\ndef check():\n    return pipeline.handle(41)\n"
    run = run_function(ws, "lab_harness.py", "check", services={}, files={"lab_harness.py": lab})
    assert run.ok, run.error
    assert run.value == 42
    assert "learner" in (ws / "lab_harness.py").read_text()  # the workspace is untouched
    with pytest.raises(ValueError, match="inside the workspace"):
        run_function(ws, "pipeline.py", "handle", services={}, files={"../x.py": ""})


def test_a_missing_file_or_function_is_a_clear_failure(hostile: Path) -> None:
    run = run_function(hostile, "nope.py", "f", services={})
    assert not run.ok and "nope.py is missing" in run.error
    run = run_function(hostile, "hostile.py", "nope", services={})
    assert not run.ok and "has no function called nope" in run.error


def test_a_process_that_exits_without_returning(hostile: Path) -> None:
    run = run_function(hostile, "hostile.py", "exits", services={})
    assert not run.ok
    assert run.exit_code == 3
    assert "exit code 3" in run.error


# ---------------------------------------------------------------- forged results


def test_forged_reports_change_neither_verdict_nor_counts(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "hostile.py")
    run = run_function(ws, "hostile.py", "forge", services=PG, clients=["postgres"])
    assert not run.ok
    assert run.value is None
    assert "FORGED" not in str(run.value)
    assert run.server["postgres"].statements == ["SELECT 'real 1'", "SELECT 'real 2'"]
    assert run.limit == "" and run.exit_code == 0


def test_a_shadowed_json_cannot_forge_the_result(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "shadow")
    (ws / "solution.py").write_text("def where():\n    raise ValueError('wrong')\n")
    run = run_function(ws, "solution.py", "where", services={})
    assert not run.ok and run.error == "ValueError: wrong"


# ---------------------------------------------------------------- deadlines and escapees


@pytest.mark.parametrize("function", ["spin", "sleeper"])
def test_code_that_never_returns_is_stopped_at_the_deadline(hostile: Path, function: str) -> None:
    started = time.perf_counter()
    run = run_function(hostile, "hostile.py", function, services={}, limits=Limits(timeout=1.5))
    took = time.perf_counter() - started
    assert run.timed_out and run.limit == "timeout" and not run.ok
    assert "still running after 1.5 seconds" in run.error
    assert took < 1.5 + 2


def test_output_printed_before_a_hang_is_kept(hostile: Path) -> None:
    run = run_function(hostile, "hostile.py", "chatty_hang", services={}, limits=Limits(timeout=1))
    assert run.timed_out
    assert run.output == "still thinking\n"


@pytest.mark.parametrize("function", ["escape", "escape_closed"])
def test_a_detached_grandchild_is_killed_when_the_call_returns(
    hostile: Path, function: str
) -> None:
    mark = uuid.uuid4().hex
    started = time.perf_counter()
    run = run_function(hostile, "hostile.py", function, services={}, env={"TEST_MARK": mark})
    assert time.perf_counter() - started < 5
    assert run.ok, run.error
    escapee = run.value
    assert isinstance(escapee, int)
    assert run.killed >= 1
    assert not alive(escapee)
    assert tagged_processes(mark) == []


def test_a_detached_grandchild_holding_the_pipes_does_not_hold_the_deadline(hostile: Path) -> None:
    mark = uuid.uuid4().hex
    started = time.perf_counter()
    run = run_function(
        hostile,
        "hostile.py",
        "escape_then_hang",
        services={},
        env={"TEST_MARK": mark},
        limits=Limits(timeout=1.5),
    )
    assert time.perf_counter() - started < 1.5 + 2
    assert run.timed_out
    escapee = int(run.output.split()[1])
    assert not alive(escapee)
    assert tagged_processes(mark) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="counts processes in /proc")
def test_a_fork_bomb_is_bounded(hostile: Path) -> None:
    mark = uuid.uuid4().hex
    started = time.perf_counter()
    run = run_function(
        hostile,
        "hostile.py",
        "forkbomb",
        services={},
        env={"TEST_MARK": mark},
        limits=Limits(timeout=5, processes=16),
    )
    assert time.perf_counter() - started < 5 + 2
    assert run.limit == "processes" and not run.ok
    assert "more than 16 processes" in run.error
    assert run.killed > 16
    assert tagged_processes(mark) == []


HUNG_SUPERVISOR = """
import json, subprocess, sys, time
spec = json.loads(sys.stdin.readline())
subprocess.Popen(["sleep", "1000"], env=spec["env"], start_new_session=True)
time.sleep(1000)
"""


def test_the_call_returns_in_time_even_if_the_supervisor_hangs(
    hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdtutor.lab.runner import launch

    monkeypatch.setenv(launch.ZYGOTE_VARIABLE, "0")  # a supervisor started as a program
    monkeypatch.setattr(launch, "SUPERVISOR", [*launch.PYTHON, "-c", HUNG_SUPERVISOR])
    mark = uuid.uuid4().hex
    started = time.perf_counter()
    run = run_function(
        hostile,
        "hostile.py",
        "identity",
        services={},
        env={"TEST_MARK": mark},
        limits=Limits(timeout=1),
    )
    assert time.perf_counter() - started < 1 + 2.5
    assert run.timed_out and not run.ok
    assert tagged_processes(mark) == []  # swept by the run's tag


def test_a_supervisor_that_dies_is_a_runner_error_not_the_learners(
    hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdtutor.lab.runner import launch

    crash = "import sys; sys.stderr.write('supervisor broke'); sys.exit(1)"
    monkeypatch.setenv(launch.ZYGOTE_VARIABLE, "0")
    monkeypatch.setattr(launch, "SUPERVISOR", [*launch.PYTHON, "-c", crash])
    with pytest.raises(LabError, match="without a report") as caught:
        run_function(hostile, "hostile.py", "identity", services={})
    assert "supervisor broke" in str(caught.value)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="walks /proc")
def test_a_forked_supervisor_killed_mid_run_leaves_no_learner_process(hostile: Path) -> None:
    """The zygote adopts what a dead supervisor leaves (a detached grandchild too) and
    kills it; the call is a runner error, at once, not a wait for its deadline."""
    import threading

    from sdtutor.lab.runner import launch, tree

    run_function(hostile, "hostile.py", "identity", services={})  # the zygote is up
    zygote = launch._zygote.proc.pid
    outcome: list[BaseException | object] = []

    def call() -> None:
        try:
            run = run_function(
                hostile, "hostile.py", "escape_then_hang", services={}, limits=Limits(timeout=20)
            )
            outcome.append(run)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    started = time.perf_counter()
    caller.start()
    learner: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(learner) < 2:  # the harness and the escapee
        supervisors = _children(zygote)
        learner = [p for s in supervisors for p in tree.descendants(s)]
        time.sleep(0.05)
    assert len(supervisors) == 1 and len(learner) >= 2, (supervisors, learner)
    os.kill(supervisors[0], 9)
    caller.join(10)
    assert not caller.is_alive()
    assert time.perf_counter() - started < 10, "it waited for the learner's deadline"
    assert isinstance(outcome[0], LabError) and "without a report" in str(outcome[0])
    for _ in range(50):
        if not any(alive(p) for p in learner):
            break
        time.sleep(0.1)
    assert not any(alive(p) for p in learner), "the zygote left a learner process alive"


def test_a_fresh_call_has_its_own_hash_salt(hostile: Path) -> None:
    """Forked calls share the zygote's str hash salt; `fresh=True` gets a new interpreter,
    which is how a check shows that hash() differs between processes."""
    forked = [run_function(hostile, "hostile.py", "str_hash", services={}) for _ in range(2)]
    fresh = run_function(hostile, "hostile.py", "str_hash", services={}, fresh=True)
    assert all(r.ok for r in [*forked, fresh])
    assert fresh.value != forked[0].value  # a 64-bit salt: equal by chance 1 time in 2**64
    assert forked[0].value == forked[1].value


# ---------------------------------------------------------------- memory, CPU, output


def test_a_huge_allocation_hits_the_memory_limit(hostile: Path) -> None:
    run = run_function(hostile, "hostile.py", "bigalloc", services={}, limits=Limits(memory_mb=512))
    assert not run.ok and run.limit == "memory"
    assert "out of memory" in run.error and "512 MB" in run.error


def test_cpu_time_is_limited(hostile: Path) -> None:
    run = run_function(
        hostile, "hostile.py", "burn_cpu", services={}, limits=Limits(timeout=10, cpu_seconds=1)
    )
    assert not run.ok and run.limit == "cpu"
    assert run.seconds < 5


def test_an_output_flood_is_cut_and_the_parent_stays_small(hostile: Path) -> None:
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = run_function(
        hostile, "hostile.py", "flood", services={}, limits=Limits(output_bytes=10_000)
    )
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert run.ok and run.value == "flooded"
    assert run.output_truncated and len(run.output) == 10_000
    assert peak_after - peak_before < 30 * 1024  # kB: 100 MB went through, none of it kept


# ---------------------------------------------------------------- accounts (as root)


@pytest.mark.skipif(not AS_ROOT, reason="only as root is learner code run as another account")
def test_as_root_learner_code_cannot_read_the_state_folder(
    hostile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    secret = home / "progress.sqlite3"
    secret.write_text("certificates")
    secret.chmod(0o644)
    monkeypatch.setenv("SDTUTOR_HOME", str(home))
    run = run_function(hostile, "hostile.py", "read_file", services={}, args=[str(secret)])
    assert run.ok, run.error
    assert run.value.startswith("refused")
    run = run_function(hostile, "hostile.py", "write_workspace", services={})
    assert run.value.startswith("refused")
    assert not (hostile / "solution_note.txt").exists()


def test_the_original_workspace_is_never_changed(hostile: Path) -> None:
    run_function(hostile, "hostile.py", "write_workspace", services={})
    assert not (hostile / "solution_note.txt").exists()


# ---------------------------------------------------------------- counting at the server


@pytest.fixture(scope="module")
def every_api_run(tmp_path_factory: pytest.TempPathFactory) -> object:
    ws = workspace(tmp_path_factory.mktemp("pg"), "pg_apis.py")
    return run_function(ws, "pg_apis.py", "every_api", services=PG, clients=["postgres"])


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("'loop'", 3),
        ("'many'", 4),
        ("'stream'", 1),
        ('DECLARE "learner_cursor"', 1),
        ("FETCH FORWARD", 1),
        ("'iter'", 1),
        ("'prepared'", 2),
        ("COPY copied", 1),
        ("'pipe'", 2),
        ("'second'", 1),
    ],
)
def test_statements_are_counted_whatever_the_client_api(
    every_api_run: object, marker: str, expected: int
) -> None:
    run = every_api_run
    assert run.ok, run.error + run.traceback  # type: ignore[attr-defined]
    statements = run.server["postgres"].statements  # type: ignore[attr-defined]
    assert sum(marker in s for s in statements) == expected, statements


def test_plain_iteration_over_a_cursor_just_works(every_api_run: object) -> None:
    assert every_api_run.value == [5, 7, 3]  # type: ignore[attr-defined]
    assert every_api_run.server["postgres"].connections == 2  # type: ignore[attr-defined]


def test_redis_pipelines_and_multi_are_counted(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "redis_apis.py")
    run = run_function(
        ws,
        "redis_apis.py",
        "cache_work",
        services={"cache": Service("redis", REDIS_URL)},
        clients=["cache"],
        env={"REDIS_KEY_PREFIX": KEY},
    )
    assert run.ok, run.error + run.traceback
    stats = run.server["cache"]
    names = stats.command_names()
    assert stats.count_commands("GET") == 4
    assert names[names.index("MULTI") : names.index("EXEC") + 1] == [
        "MULTI",
        "SET",
        "EXPIRE",
        "EXEC",
    ]
    assert ["SET", KEY + "plain", "1", "EX", "30"] in stats.commands


def test_rabbitmq_client_is_made_and_counted(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mq.py").write_text(
        "def declare(conn):\n"
        "    ch = conn.channel()\n"
        "    ch.queue_declare('sdtutor-test-proxy.runner', auto_delete=True)\n"
        "    ch.basic_publish('', 'sdtutor-test-proxy.runner', b'hi')\n"
        "    ch.queue_delete('sdtutor-test-proxy.runner')\n"
        "    return 'ok'\n"
    )
    run = run_function(
        ws, "mq.py", "declare", services={"mq": Service("rabbitmq", AMQP_URL)}, clients=["mq"]
    )
    assert run.ok, run.error + run.traceback
    assert run.server["mq"].count_methods("basic.publish") == 1
    assert "queue.delete" in run.server["mq"].methods


def test_a_callers_proxy_injects_faults_and_counts_only_this_run(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "workers.py")
    with Proxy("postgres", upstream_of(PG_URL, "postgres")) as proxy:
        import psycopg

        with psycopg.connect(proxy.url_for(PG_URL)) as mine:
            mine.execute("SELECT 'before'")
        proxy.latency = 0.3
        run = run_function(
            ws,
            "workers.py",
            "stamp",
            services=PG,
            clients=["postgres"],
            args=[0],
            proxies={"postgres": proxy},
        )
    assert run.ok, run.error
    assert run.seconds >= 0.3
    assert len(run.server["postgres"].statements) == 1
    assert "before" not in run.server["postgres"].statements[0]


# ---------------------------------------------------------------- workers


def test_workers_are_released_together(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "workers.py")
    result = run_workers(
        ws, "workers.py", "stamp", 8, services=PG, clients=["postgres"], args_for=lambda i: [i]
    )
    assert result.ok, [r.error for r in result.runs]
    assert result.released
    assert sorted(r.value[0] for r in result.runs) == list(range(8))
    stamps = [r.value[1] for r in result.runs]
    assert max(stamps) - min(stamps) < 0.25, stamps  # measured by PostgreSQL's clock
    assert result.server["postgres"].connections == 8
    assert len(result.server["postgres"].statements) == 8


def test_a_worker_that_fails_to_start_does_not_block_the_others(tmp_path: Path) -> None:
    ws = workspace(tmp_path, "workers.py")
    result = run_workers(
        ws,
        "workers.py",
        "stamp",
        3,
        services=PG,
        clients=["postgres"],
        args_for=[[0], [1], [2, "one too many"]],
        limits=Limits(timeout=10),
    )
    assert [r.ok for r in result.runs] == [True, True, False]
    assert "TypeError" in result.runs[2].error
    assert result.seconds < 8


FORKED = """
import os, signal

print("imported in", os.getpid())
with open(os.path.join(os.environ["TMPDIR"], "imports"), "a") as f:
    f.write("x")


def who(conn, cache, index):
    with open(os.path.join(os.environ["TMPDIR"], "imports")) as f:
        imports = len(f.read())
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    return [index, os.getpid(), backend, cache.client_id(), imports]


def misbehave(index):
    if index == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if index == 2:
        while True:
            pass
    return index
"""


def learner_file(tmp_path: Path, name: str, code: str) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / name).write_text(code)
    return ws


def test_workers_load_the_module_once_and_each_makes_its_own_clients(tmp_path: Path) -> None:
    ws = learner_file(tmp_path, "forked.py", FORKED)
    services = {**PG, "redis": Service("redis", REDIS_URL)}
    result = run_workers(
        ws,
        "forked.py",
        "who",
        6,
        services=services,
        clients=["postgres", "redis"],
        args_for=lambda i: [i],
    )
    assert result.ok and result.released, [r.error for r in result.runs]
    values = [r.value for r in result.runs]
    assert [v[0] for v in values] == list(range(6))
    assert len({v[1] for v in values}) == 6  # six processes
    assert len({v[2] for v in values}) == 6  # six PostgreSQL sessions: no shared socket
    assert len({v[3] for v in values}) == 6  # six Redis connections
    assert all(v[4] == 1 for v in values)  # the module was imported once, before the forks
    assert result.server["postgres"].connections == 6
    assert result.server["redis"].connections == 6
    importer = {r.output.split()[-1] for r in result.runs if r.output.startswith("imported in")}
    assert len(importer) == 1 and importer.isdisjoint(str(v[1]) for v in values), importer


def test_each_forked_worker_is_measured_by_the_supervisor(tmp_path: Path) -> None:
    ws = learner_file(tmp_path, "forked.py", FORKED)
    result = run_workers(
        ws,
        "forked.py",
        "misbehave",
        4,
        services={},
        args_for=lambda i: [i],
        limits=Limits(timeout=10, cpu_seconds=1, processes=1),
    )
    runs = result.runs
    assert [r.ok for r in runs] == [True, False, False, True], [r.error for r in runs]
    assert runs[1].exit_code == -9 and "SIGKILL" in runs[1].error
    assert runs[2].limit == "cpu" and "CPU" in runs[2].error
    assert [runs[0].value, runs[3].value] == [0, 3]
    assert result.limit == ""  # one process per worker is within processes=1
    assert result.seconds < 8


def test_a_module_that_fails_to_import_fails_every_worker(tmp_path: Path) -> None:
    ws = learner_file(tmp_path, "broken.py", "x = 1\ny = x / 0\n\ndef f():\n    return 1\n")
    result = run_workers(ws, "broken.py", "f", 3, services={}, limits=Limits(timeout=10))
    assert [r.ok for r in result.runs] == [False] * 3
    assert all("ZeroDivisionError" in r.error and "broken.py" in r.traceback for r in result.runs)
    assert result.seconds < 8


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="counts processes in /proc")
def test_a_fork_bomb_in_workers_is_bounded(hostile: Path) -> None:
    mark = uuid.uuid4().hex
    result = run_workers(
        hostile,
        "hostile.py",
        "forkbomb",
        2,
        services={},
        env={"TEST_MARK": mark},
        limits=Limits(timeout=5, processes=8),
    )
    assert result.limit == "processes" and not any(r.ok for r in result.runs)
    assert "more than 8 processes" in result.runs[0].error
    assert tagged_processes(mark) == []


def test_workers_hanging_at_import_or_in_the_call_end_at_the_deadline(
    tmp_path: Path, hostile: Path
) -> None:
    ws = learner_file(tmp_path, "stuck.py", "import time\ntime.sleep(1000)\n\ndef f():\n    pass\n")
    for workspace_, file, function in ((ws, "stuck.py", "f"), (hostile, "hostile.py", "sleeper")):
        mark = uuid.uuid4().hex
        started = time.perf_counter()
        result = run_workers(
            workspace_,
            file,
            function,
            3,
            services={},
            env={"TEST_MARK": mark},
            limits=Limits(timeout=1),
        )
        assert time.perf_counter() - started < 1 + 2.5
        assert result.limit == "timeout" and all(r.timed_out for r in result.runs)
        assert tagged_processes(mark) == []


# ---------------------------------------------------------------- service mode


def http_get(url: str, path: str) -> tuple[int, str]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    yield workspace(tmp_path, "apps")


@pytest.mark.slow
def test_a_service_is_started_answers_is_killed_and_restarted(app: Path) -> None:
    with start_service(app, ["app.py"], services=PG, ready=("http", "/")) as svc:
        assert svc.alive()
        assert http_get(svc.url, "/") == (200, "hello")
        assert http_get(svc.url, "/count") == (200, "7")
        assert svc.proxies["postgres"].stats.statements == ["BEGIN", "SELECT 7", "COMMIT"]
        assert svc.wait_for_log("served /count")  # logs come as they are printed
        assert svc.logs().startswith("starting on")
        svc.kill()
        assert not svc.alive()
        with pytest.raises(OSError):
            http_get(svc.url, "/")
        svc.restart()
        assert svc.alive()
        assert http_get(svc.url, "/") == (200, "hello")
        port = svc.port
        svc.stop()
        assert not svc.alive() and svc.exit_code is not None
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}", "/")


@pytest.mark.slow
def test_a_service_that_never_answers_fails_clearly_in_time(app: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(LabError, match="did not answer on port") as caught:
        start_service(app, ["never_ready.py"], ready_timeout=1.5)
    assert time.perf_counter() - started < 1.5 + 3
    assert "thinking about it" in str(caught.value)


@pytest.mark.slow
def test_a_service_that_crashes_says_so_with_its_output(app: Path) -> None:
    with pytest.raises(LabError, match="ended") as caught:
        start_service(app, ["crash.py"], ready_timeout=5)
    assert "no config" in str(caught.value)


def test_a_service_that_exits_with_a_message_shows_it(app: Path) -> None:
    """sys.exit("why") prints why, as Python itself would."""
    with pytest.raises(LabError, match="ended") as caught:
        start_service(app, ["exits.py"], ready_timeout=5)
    assert "DATABASE_URL is not set" in str(caught.value)
