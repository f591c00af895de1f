"""run_function and run_workers: call the learner's code under the supervisor and report."""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sdtutor.errors import LabError
from sdtutor.lab.proxy import Proxy, ProxyStats
from sdtutor.lab.runner.isolation import current_isolation, prepare
from sdtutor.lab.runner.launch import (
    Supervised,
    check_file,
    learner_env,
    new_token,
    open_proxies,
)
from sdtutor.lab.runner.limits import Limits
from sdtutor.lab.runner.protocol import MAX_RESULT, decode_result
from sdtutor.lab.runner.results import LearnerRun, Service, WorkersRun

GRACE = 2.0
"""Seconds past the timeout before the parent stops waiting for the supervisor."""


def run_function(
    workspace: Path,
    file: str,
    function: str,
    *,
    services: Mapping[str, Service],
    clients: Sequence[str] = (),
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    limits: Limits = Limits(),
    proxies: Mapping[str, Proxy] | None = None,
    files: Mapping[str, str | bytes] | None = None,
    fresh: bool = False,
) -> LearnerRun:
    """Call `function(*clients, *args, **kwargs)` from the workspace's `file`, isolated.

    Returns within `limits.timeout` plus about two seconds whatever the code does. `files`
    (name -> content) are added to the private copy of the workspace, replacing files of
    the same name. Raises LabError only when the runner itself cannot work (never for the
    learner's mistakes).

    `fresh`: start a new interpreter for this call instead of forking it from the zygote.
    Forked calls share the zygote's str hash salt, so a check that what the learner's code
    computes is the same in every process (Python's hash() is not) compares a forked call
    with a fresh one.
    """
    workers = _run(
        workspace,
        file,
        function,
        [list(args)],
        dict(kwargs or {}),
        services=services,
        clients=clients,
        env=env,
        limits=limits,
        proxies=proxies,
        files=files,
        fresh=fresh,
    )
    run = workers.runs[0]
    run.server = workers.server
    run.killed = workers.killed
    return run


def run_workers(
    workspace: Path,
    file: str,
    function: str,
    n: int,
    *,
    services: Mapping[str, Service],
    clients: Sequence[str] = (),
    args_for: Callable[[int], Sequence[Any]] | Sequence[Sequence[Any]] = (),
    env: Mapping[str, str] | None = None,
    limits: Limits = Limits(),
    proxies: Mapping[str, Proxy] | None = None,
    files: Mapping[str, str | bytes] | None = None,
) -> WorkersRun:
    """Run `function` in N processes that start together.

    One harness imports the client libraries and the learner's module once (work the module
    does at import time runs once, there, and its output heads every worker's output), then
    forks the N workers (Linux; elsewhere each worker is a harness of its own). Each worker
    makes its own clients after the fork, then waits at a start barrier; when all are ready
    they are released at once. `args_for(i)` (or `args_for[i]`) gives worker i's arguments.
    `server` holds the totals over all workers. Limits apply to each worker; the tree may
    hold N x Limits.processes processes (plus the forking harness while it forks), and one
    deadline covers all.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if callable(args_for):
        all_args = [list(args_for(i)) for i in range(n)]
    else:
        all_args = [list(args_for[i]) if i < len(args_for) else [] for i in range(n)]
    return _run(
        workspace,
        file,
        function,
        all_args,
        {},
        services=services,
        clients=clients,
        env=env,
        limits=limits,
        proxies=proxies,
        files=files,
        barrier=True,
    )


def _run(
    workspace: Path,
    file: str,
    function: str,
    all_args: list[list[Any]],
    kwargs: dict[str, Any],
    *,
    services: Mapping[str, Service],
    clients: Sequence[str],
    env: Mapping[str, str] | None,
    limits: Limits,
    proxies: Mapping[str, Proxy] | None,
    files: Mapping[str, str | bytes] | None,
    barrier: bool = False,
    fresh: bool = False,
) -> WorkersRun:
    unknown = [name for name in clients if name not in services]
    if unknown:
        raise ValueError(f"clients {unknown} are not among the services {list(services)}")
    try:
        json.dumps([all_args, kwargs])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"arguments must be JSON values: {exc}") from None
    missing = check_file(Path(workspace), file, files)
    if missing:
        return WorkersRun(runs=[LearnerRun(ok=False, error=missing) for _ in all_args])

    iso = current_isolation()
    live, owned = open_proxies(services, proxies)
    before = {name: p.stats.snapshot() for name, p in live.items()}
    open_before = {name: p.open_connections for name, p in live.items()}
    try:
        sandbox = prepare(Path(workspace), iso, files)
    except BaseException:
        for proxy in owned:
            proxy.close()
        raise
    token = new_token()
    started = time.monotonic()
    try:
        child = {
            "mode": "call",
            "workspace": str(sandbox.workdir),
            "file": file,
            "function": function,
            "kwargs": kwargs,
            "clients": [
                {"kind": services[name].kind, "url": live[name].url_for(services[name].url)}
                for name in clients
            ],
        }
        sup = Supervised(
            "workers" if barrier else "call",
            [{**child, "args": args} for args in all_args],
            iso=iso,
            sandbox=sandbox,
            env=learner_env(services, live, env, sandbox, token),
            limits=limits,
            token=token,
            fresh=fresh,
        )
        end = None
        try:
            end = sup.wait_end(time.monotonic() + limits.timeout + GRACE)
            trouble = "" if end is not None and not end.get("error") else sup.stderr()
        finally:
            # A supervisor that missed its deadline is not waited for any longer.
            sup.close(wait=2.0 if end is not None or sup.finished_early else 0.0)
        if end is None and sup.finished_early:
            raise LabError("The runner's supervisor ended without a report.", trouble[-2000:])
        if end is not None and end.get("error"):
            raise LabError(f"Could not start the learner's code: {end['error']}", trouble[-2000:])
        if end is None:  # the supervisor hung: it was killed and the tree swept by its tag
            end = {"limit": "timeout", "killed": 0, "released": False, "children": []}
            runs = [_abandoned(limits) for _ in all_args]
        else:
            runs = [_to_run(child, limits) for child in end["children"]]
    finally:
        sandbox.cleanup()
        server = _settle(live, owned, before, open_before)
    return WorkersRun(
        runs=runs,
        server=server,
        released=bool(end.get("released")),
        seconds=time.monotonic() - started,
        limit=str(end.get("limit", "")),
        killed=int(end.get("killed", 0)),
    )


def _settle(
    live: dict[str, Proxy],
    owned: list[Proxy],
    before: dict[str, ProxyStats],
    open_before: dict[str, int],
) -> dict[str, ProxyStats]:
    """Wait for the proxies to see the learner's connections close, then take the counts."""
    deadline = time.monotonic() + 1.0
    for name, proxy in live.items():
        while proxy.open_connections > open_before[name] and time.monotonic() < deadline:
            time.sleep(0.01)
    server = {name: proxy.stats.since(before[name]) for name, proxy in live.items()}
    for proxy in owned:
        proxy.close()
    return server


def _abandoned(limits: Limits) -> LearnerRun:
    return LearnerRun(
        ok=False,
        timed_out=True,
        limit="timeout",
        error=f"it was still running after {limits.timeout:g} seconds",
    )


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it did not end"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _to_run(child: dict[str, Any], limits: Limits) -> LearnerRun:
    """A LearnerRun from the supervisor's report on one harness."""
    raw = base64.b64decode(child["result"])
    _, message, problem = decode_result(raw)
    if child.get("result_over"):
        message, problem = None, f"its result was larger than {MAX_RESULT // 2**20} MB"
    exit_code = child["exit_code"]
    limit = child["limit"]
    if not limit and message and not message["ok"] and message["error"].startswith("MemoryError"):
        limit = "memory"
    run = LearnerRun(
        ok=False,
        timed_out=limit == "timeout",
        output=child["output"],
        output_truncated=child["output_truncated"],
        exit_code=exit_code,
        limit=limit,
        seconds=child["seconds"],
    )
    if message is not None:
        run.traceback = message["traceback"]
        run.error = message["error"]
    if limit:
        run.error = _LIMIT_MESSAGES[limit].format(limits=limits) + (
            f" ({run.error})" if run.error else ""
        )
    elif problem:
        run.error = problem
    elif message is None:
        run.error = (
            f"the process ended ({_describe_exit(exit_code)}) before returning; see its output"
        )
    elif message["ok"] and exit_code != 0:
        run.error = f"the process ended badly ({_describe_exit(exit_code)}) after returning"
    elif message["ok"]:
        run.ok = True
        run.value = message["value"]
    return run


_LIMIT_MESSAGES = {
    "timeout": "it was still running after {limits.timeout:g} seconds",
    "processes": "it started more than {limits.processes} processes at once",
    "cpu": "it used more than {limits.cpu_seconds} seconds of CPU",
    "memory": "it ran out of memory (the limit is {limits.memory_mb} MB)",
}
