"""The learner runner: untrusted learner code, run so that it cannot fool the grader.

    run = run_function(ws, "solution.py", "get_product", services={"db": Service(
        "postgres", url)}, clients=["db"], args=[42], limits=Limits(timeout=10))
    run.ok, run.value, run.error, run.server["db"].statements, run.limit

`run_function` calls one function; `run_workers` runs N copies released together at a
start barrier (one harness loads the code once and forks them: see harness.py);
`start_service` runs the learner's own server on a port. Learner code sees
only proxied URLs: DATABASE_URL / REDIS_URL / AMQP_URL (the first service of each kind),
SDTUTOR_URL_<NAME> for every service, plus the caller's `env`; also PATH, HOME and TMPDIR
(a private scratch folder), LANG, MALLOC_ARENA_MAX and SDTUTOR_RUN_TAG (the run's tag).

Threat model. Learner code is untrusted and graded for a certificate. It runs in a child
process (`harness.py`) under a supervisor process (`supervisor.py`). On Linux both are
forked, not started: a zygote process per checker (`zygote.py`, started on first use,
SDTUTOR_RUNNER_ZYGOTE=0 turns it off) has imported the runner and the client libraries
once, forks a supervisor per run, which forks its harness, each taking the steps an exec
would (that file says what a fork keeps that an exec would not). A run costs a few
milliseconds of CPU instead of two interpreters importing psycopg or redis (0.2-0.5 s).

- Isolated interpreter (`python -I -B`): no PYTHON* variables, no user site, neither the
  current folder nor the script's folder on sys.path. The workspace is appended to the
  END of sys.path after the harness's own imports, so a workspace `json.py`, `psycopg.py`
  or `sdtutor.py` can shadow neither the harness nor a library.
- The spec reaches the child on stdin (no file the learner could read back or rewrite).
  The child answers on a pipe; the parent accepts one bounded, schema-checked message
  (`protocol.py`). The return value is the learner's by definition: a forged message can
  only claim a return value, which the check then judges like any other. Nothing else
  comes from the child: statement and command counts are taken at a wire-level proxy
  (`sdtutor.lab.proxy`), and timing, exit status, limits hit and processes killed are
  measured by the supervisor, which reports on its own stdout — a pipe no learner process
  inherits. Forked workers are adopted by the supervisor (the forking harness exits), which
  reaps and measures each itself; the forking harness only names which pid is which.
- The supervisor is a child subreaper (Linux), so descendants that call setsid or double
  fork stay in its tree. At the deadline, when the process count goes over the limit, or
  when the harness ends, it kills every descendant until none is left, then any process
  whose environment carries the run's random tag. The parent reads only the supervisor's
  pipe, so a descendant that keeps its pipes open cannot make it wait; if the supervisor
  itself hangs, the parent kills it and sweeps by the tag. Not Linux: the harness's
  process group is killed instead and processes are not counted.
- Limits: RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE and no core files per process; output is
  drained and cut at Limits.output_bytes. "memory" is also reported when the learner's
  code ends in MemoryError (a huge allocation fails at once, leaving no trace outside);
  that can only turn a run into a failure. As root, learner processes run as `nobody`
  (with RLIMIT_NPROC) on a private read-only copy of the workspace, with SDTUTOR_HOME
  hidden in a private mount namespace (`isolation.py`).

Known limit: the learner is given real credentials (through the proxy), so code that
deliberately connects to the upstream port itself is not counted; a check that must be
sure can compare with the server's own counters.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdtutor.lab.proxy import Proxy, ProxyStats
    from sdtutor.lab.runner.api import run_function, run_workers
    from sdtutor.lab.runner.isolation import Isolation, current_isolation
    from sdtutor.lab.runner.limits import Limits
    from sdtutor.lab.runner.results import LearnerRun, Service, WorkersRun
    from sdtutor.lab.runner.service import ServiceHandle, start_service
    from sdtutor.lab.runner.values import normalise

# Loaded on first use: the supervisor and harness start as `-m sdtutor.lab.runner.*`,
# which imports this package first, and they need none of the parent's side.
_HOME = {
    "Proxy": "sdtutor.lab.proxy",
    "ProxyStats": "sdtutor.lab.proxy",
    "run_function": "sdtutor.lab.runner.api",
    "run_workers": "sdtutor.lab.runner.api",
    "Isolation": "sdtutor.lab.runner.isolation",
    "current_isolation": "sdtutor.lab.runner.isolation",
    "Limits": "sdtutor.lab.runner.limits",
    "LearnerRun": "sdtutor.lab.runner.results",
    "Service": "sdtutor.lab.runner.results",
    "WorkersRun": "sdtutor.lab.runner.results",
    "ServiceHandle": "sdtutor.lab.runner.service",
    "start_service": "sdtutor.lab.runner.service",
    "normalise": "sdtutor.lab.runner.values",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


__all__ = [
    "Isolation",
    "LearnerRun",
    "Limits",
    "Proxy",
    "ProxyStats",
    "Service",
    "ServiceHandle",
    "WorkersRun",
    "current_isolation",
    "normalise",
    "run_function",
    "run_workers",
    "start_service",
]
