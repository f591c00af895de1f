"""The child: makes the clients, imports the learner's code, calls it, sends one result.

Started by the supervisor as `python -I -B -m sdtutor.lab.runner.harness` (isolated: no
PYTHON* variables, no user site, neither the current folder nor the workspace on the
import path). The spec comes as JSON on stdin; the result goes to the pipe whose fd the
spec names (see protocol.py). Everything the harness needs is imported before the
workspace is appended to the END of sys.path, so a workspace file called json.py,
psycopg.py or sdtutor.py can neither replace the harness's modules nor a library.
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


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:  # a learner exception whose __str__ raises
        return type(exc).__name__


def call(spec: dict[str, Any], result_fd: int) -> None:
    """Call the learner's function once and write its result frame."""
    clients: list[Any] = []
    frame: bytes
    try:
        for client in spec["clients"]:
            clients.append(make_client(client["kind"], client["url"]))
        workspace = Path(spec["workspace"])
        sys.path.append(str(workspace))
        module = _load(workspace, spec["file"])
        function = getattr(module, spec["function"], None)
        if not callable(function):
            raise AttributeError(f"{spec['file']} has no function called {spec['function']}")
        _write_all(result_fd, READY)
        if spec.get("go_fd") is not None:
            os.read(spec["go_fd"], 1)  # the start barrier: wait for the supervisor's "go"
        value = function(*clients, *spec["args"], **spec["kwargs"])
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
    else:
        code = serve(spec)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    # os._exit: atexit hooks and non-daemon threads the learner left behind do not run.
    os._exit(code)


if __name__ == "__main__":
    main()
