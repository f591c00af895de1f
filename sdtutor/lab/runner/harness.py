"""The child: makes the clients, imports the learner's code, calls it, sends one result.

Started by the supervisor as `python -I -B -m sdtutor.lab.runner.harness` (isolated: no
PYTHON* variables, no user site, neither the current folder nor the workspace on the
import path). The spec comes as JSON on stdin; the result goes to the pipe whose fd the
spec names (see protocol.py). Everything the harness needs is imported before the
workspace is appended to the END of sys.path, so a workspace file called json.py,
psycopg.py or sdtutor.py can neither replace the harness's modules nor a library.

Workers (mode "fork"): one harness imports the client libraries and the learner's module
once, then forks the N workers. Each worker makes its OWN clients after the fork (no
socket is shared across a fork), says it is ready on its own result pipe, waits at the
start barrier, calls the function and sends its one result there; its output goes to its
own pipe. The forking harness sends each worker's pid to the supervisor and exits at once,
so the workers become the supervisor's children (it is a subreaper) and it measures them
itself. Work the learner's module does at import time (and what it prints) happens once,
in the forking harness, before any worker exists: a connection it opens then would be
shared by every worker, which is the learner's own doing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import runpy
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.protocol import READY, encode_result
from sdtutor.lab.runner.values import normalise

CLOSE_WAIT = 2.0
"""Seconds the harness waits for the clients to close after sending the result."""


def make_client(kind: str, url: str) -> Any:
    """The client object a learner function gets for a service of this kind."""
    if kind == "postgres":
        import psycopg

        return psycopg.connect(url, autocommit=True)
    if kind == "redis":
        import redis

        return redis.Redis.from_url(url, decode_responses=True)
    if kind == "rabbitmq":
        import pika

        return pika.BlockingConnection(pika.URLParameters(url))
    raise ValueError(f"no client for a {kind} service")


CLIENT_MODULES = {"postgres": "psycopg", "redis": "redis", "rabbitmq": "pika"}
"""The library make_client imports for each kind (imported before forking workers)."""


def close_client(client: Any) -> None:
    """Close a client made by make_client, ignoring errors."""
    with contextlib.suppress(Exception):
        client.close()


def _close_all(clients: list[Any]) -> None:
    for client in clients:
        close_client(client)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _load(workspace: Path, file: str) -> Any:
    stem = Path(file).stem
    name = stem if stem not in sys.modules else f"learner_{stem}"
    spec = importlib.util.spec_from_file_location(name, workspace / file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so the learner's other modules can import it by name
    spec.loader.exec_module(module)
    return module


def import_learner(path: str | Path) -> Any:
    """Import a learner's module from its file, afresh (a new module object each call).

    For a lab's own harness.py, which the checks put beside the learner's files in the
    sandbox: `import_learner(Path(__file__).with_name("router.py"))`. The folder goes at
    the END of sys.path, so the learner's other modules import by name and the workspace
    still cannot shadow a library.
    """
    file = Path(path)
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:  # a learner exception whose __str__ raises
        return type(exc).__name__


def _find_function(spec: dict[str, Any]) -> Callable[..., Any]:
    workspace = Path(spec["workspace"])
    sys.path.append(str(workspace))
    module = _load(workspace, spec["file"])
    function = getattr(module, spec["function"], None)
    if not callable(function):
        raise AttributeError(f"{spec['file']} has no function called {spec['function']}")
    return function


def call(
    spec: dict[str, Any],
    result_fd: int,
    args: list[Any] | None = None,
    loaded: Callable[..., Any] | BaseException | None = None,
) -> None:
    """Call the learner's function once and write its result frame.

    `loaded` is the function (or why it could not be loaded) when a forking harness has
    loaded the module already; `args` replaces spec["args"] then.
    """
    clients: list[Any] = []
    frame: bytes
    try:
        for client in spec["clients"]:
            clients.append(make_client(client["kind"], client["url"]))
        if isinstance(loaded, BaseException):
            raise loaded
        function = loaded if loaded is not None else _find_function(spec)
        _write_all(result_fd, READY)
        if spec.get("go_fd") is not None:
            os.read(spec["go_fd"], 1)  # the start barrier: wait for the supervisor's "go"
        value = function(*clients, *(spec["args"] if args is None else args), **spec["kwargs"])
        frame = encode_result(True, normalise(value))
    except BaseException as exc:  # the learner's code may raise anything, SystemExit too
        try:
            frame = encode_result(False, None, _describe(exc), traceback.format_exc(limit=-8))
        except BaseException:
            frame = encode_result(False, None, type(exc).__name__)
    _write_all(result_fd, frame)
    # Closed after the result is sent, and not waited for long: a client whose connection
    # the lab paused or dropped may take its time.
    closer = threading.Thread(target=_close_all, args=(clients,), daemon=True)
    closer.start()
    closer.join(CLOSE_WAIT)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()


def fork_workers(spec: dict[str, Any]) -> None:
    """Load once, fork one worker per spec["workers"] entry, send their pids, and exit."""
    for kind in {client["kind"] for client in spec["clients"]}:
        with contextlib.suppress(Exception):  # a missing library fails in make_client
            importlib.import_module(CLIENT_MODULES.get(kind, ""))
    loaded: Callable[..., Any] | BaseException
    try:
        loaded = _find_function(spec)
    except BaseException as exc:  # reported by every worker, like a failed import in each
        loaded = exc
    workers = spec["workers"]
    pids_fd = spec["pids_fd"]
    inherited = {fd for worker in workers for fd in (worker["result_fd"], worker["out_fd"])}
    for index, worker in enumerate(workers):
        _flush()  # nothing buffered before the fork is written twice
        try:
            pid = os.fork()
        except OSError as exc:
            with contextlib.suppress(OSError):
                _write_all(worker["result_fd"], encode_result(False, None, f"fork failed: {exc}"))
            continue
        if pid == 0:
            try:
                os.dup2(worker["out_fd"], 1)
                os.dup2(worker["out_fd"], 2)
                for fd in inherited | {pids_fd}:  # only its own result pipe stays open
                    if fd != worker["result_fd"]:
                        os.close(fd)
                call(spec, worker["result_fd"], worker["args"], loaded)
                _flush()
            finally:
                os._exit(0)
        with contextlib.suppress(OSError):
            _write_all(pids_fd, b"%d %d\n" % (index, pid))
    _flush()
    os._exit(0)


def serve(spec: dict[str, Any]) -> int:
    """Run the learner's script or module as __main__ (service mode)."""
    workspace = Path(spec["workspace"])
    sys.path.append(str(workspace))
    try:
        if spec.get("module"):
            sys.argv = [spec["module"], *spec.get("argv", [])[1:]]
            runpy.run_module(spec["module"], run_name="__main__", alter_sys=True)
        else:
            argv = spec["argv"]
            sys.argv = list(argv)
            runpy.run_path(str(workspace / argv[0]), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)  # as Python does: sys.exit("why") prints why
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    """Read the spec from stdin, run it, and end the process without running learner hooks."""
    spec = json.loads(sys.stdin.buffer.read())
    # The spec channel is closed now; the learner's code reads an empty stdin.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    code = 0
    if spec["mode"] == "call":
        call(spec, spec["result_fd"])
    elif spec["mode"] == "fork":
        fork_workers(spec)
    else:
        code = serve(spec)
    _flush()
    # os._exit: atexit hooks and non-daemon threads the learner left behind do not run.
    os._exit(code)


if __name__ == "__main__":
    main()
