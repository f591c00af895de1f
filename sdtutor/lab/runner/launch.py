"""The parent's side of one supervisor: start it, read its JSON lines, stop it.

The parent only ever reads the supervisor's stdout, a pipe no learner process holds, so
a descendant that keeps its own pipes open cannot make the parent wait.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from sdtutor.errors import LabError
from sdtutor.lab.proxy import Proxy
from sdtutor.lab.runner import tree
from sdtutor.lab.runner.isolation import Isolation, Sandbox, safe_relative
from sdtutor.lab.runner.limits import Limits
from sdtutor.lab.runner.results import Service

PYTHON = [sys.executable, "-I", "-B"]
SUPERVISOR = [*PYTHON, "-m", "sdtutor.lab.runner.supervisor"]
# -u: output reaches the checker as it is printed, even from code that then hangs.
HARNESS = [*PYTHON, "-u", "-m", "sdtutor.lab.runner.harness"]
ZYGOTE = [*PYTHON, "-u", "-m", "sdtutor.lab.runner.zygote"]
ZYGOTE_VARIABLE = "SDTUTOR_RUNNER_ZYGOTE"
"""Set to 0 to start two interpreters per run instead of forking them from a zygote."""
MAX_LINE = 64 * 1024 * 1024
TAG_VARIABLE = "SDTUTOR_RUN_TAG"
FIRST_URL = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "rabbitmq": "AMQP_URL"}


def learner_env(
    services: Mapping[str, Service],
    proxies: Mapping[str, Proxy],
    extra: Mapping[str, str] | None,
    sandbox: Sandbox,
    token: str,
) -> dict[str, str]:
    """The learner's whole environment: a few basics, the proxied URLs, and `extra`."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(sandbox.scratch),
        "TMPDIR": str(sandbox.scratch),
        "LANG": "C.UTF-8",
        # glibc reserves 64 MB of address space per malloc arena; with many threads and
        # RLIMIT_AS that alone would look like running out of memory.
        "MALLOC_ARENA_MAX": "2",
        TAG_VARIABLE: token,
    }
    for name, service in services.items():
        url = proxies[name].url_for(service.url)
        env["SDTUTOR_URL_" + "".join(c if c.isalnum() else "_" for c in name.upper())] = url
        first = FIRST_URL.get(service.kind)
        if first and first not in env:
            env[first] = url
    env.update(extra or {})
    return env


def open_proxies(
    services: Mapping[str, Service], given: Mapping[str, Proxy] | None
) -> tuple[dict[str, Proxy], list[Proxy]]:
    """A proxy per service (the caller's where given); also the list of those we started."""
    from sdtutor.lab.proxy import upstream_of

    proxies: dict[str, Proxy] = {}
    owned: list[Proxy] = []
    try:
        for name, service in services.items():
            if given and name in given:
                proxies[name] = given[name]
                continue
            proxy = Proxy(service.kind, upstream_of(service.url, service.kind)).start()
            owned.append(proxy)
            proxies[name] = proxy
    except BaseException:
        for proxy in owned:
            proxy.close()
        raise
    return proxies, owned


class Supervised:
    """One running supervisor process."""

    def __init__(
        self,
        mode: str,
        children: list[dict[str, Any]],
        *,
        iso: Isolation,
        sandbox: Sandbox,
        env: dict[str, str],
        limits: Limits,
        token: str,
        fresh: bool = False,
    ) -> None:
        self.token = token
        # Closed in close(); anonymous, so no learner process can open it.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        spec = {
            "mode": mode,
            "argv": HARNESS,
            "children": children,
            "cwd": str(sandbox.workdir),
            "env": env,
            "uid": iso.uid,
            "gid": iso.gid,
            # Tasks (threads too) `nobody` may run, on top of those running already. The
            # count is the user's, shared with every other run going on meanwhile (a proof
            # beside a test, a 200-thread service), so the budget is wide: the supervisor's
            # own count (Limits.processes) is what stops a fork bomb; this only caps how
            # fast one can grow between two of its looks.
            "nproc_budget": max(1024, limits.processes * 16) * len(children)
            if iso.uid is not None
            else None,
            "limits": limits.to_json(),
            "token": token,
            "expose": [[top, list(paths)] for top, paths in iso.expose],
            "hide": list(iso.hide),
        }
        forked = None if fresh else _forked_supervisor(self._stderr, env)
        self.proc: Any = forked or subprocess.Popen(
            SUPERVISOR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            close_fds=True,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._out, False)
        self._buf = b""
        self.finished_early = False
        """The supervisor closed its stdout (it ended) before the deadline."""
        self.send(json.dumps(spec))

    def send(self, line: str) -> None:
        """Write one line to the supervisor's stdin (ignored once it has gone)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()

    def events(self, deadline: float | None) -> Iterator[dict[str, Any]]:
        """The supervisor's events until it closes its stdout or the deadline passes."""
        with selectors.DefaultSelector() as sel:
            sel.register(self._out, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buf:
                    line, _, self._buf = self._buf.partition(b"\n")
                    yield json.loads(line)
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return
                if not sel.select(wait):
                    continue
                try:
                    data = os.read(self._out, 1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    self.finished_early = True
                    return
                self._buf += data
                if len(self._buf) > MAX_LINE:
                    raise LabError("The runner's supervisor sent more than expected.")

    def wait_end(self, deadline: float) -> dict[str, Any] | None:
        """The supervisor's final report, or None if it did not come by the deadline."""
        for event in self.events(deadline):
            if event.get("t") == "end":
                return event
        return None

    def stderr(self) -> str:
        """What the supervisor itself wrote to stderr (its own crash, if any)."""
        self._stderr.seek(0)
        return self._stderr.read(20000).decode(errors="replace")

    def close(self, wait: float = 2.0) -> None:
        """Make sure the supervisor and every process of the run are gone.

        Closing its stdin tells the supervisor to kill everything and exit; after `wait`
        seconds it is killed itself and the run's processes are swept by their tag.
        """
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if tree.HAVE_PROC:
            tree.kill_token(self.token)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


_zygote: Any = None
_zygote_lock = threading.Lock()


def _forked_supervisor(stderr: IO[bytes], env: Mapping[str, str]) -> Any:
    """A supervisor forked by this process's zygote (started on first use); None where
    there is none (not Linux, SDTUTOR_RUNNER_ZYGOTE=0, or it cannot start)."""
    global _zygote
    if os.environ.get(ZYGOTE_VARIABLE, "1") == "0":
        return None
    from sdtutor.lab.runner import zygote

    if not zygote.usable():
        return None
    with _zygote_lock:
        if _zygote is None or not _zygote.alive() or _zygote.owner != os.getpid():
            try:
                _zygote = zygote.Zygote(ZYGOTE)
            except OSError:
                return None
            atexit.register(_zygote.close)
        current = _zygote
    try:
        return current.spawn(stderr, env)
    except OSError:
        return None


def new_token() -> str:
    """A random tag for one run's processes."""
    return secrets.token_hex(16)


def check_file(workspace: Path, file: str, files: Mapping[str, object] | None = None) -> str:
    """Why `file` cannot be run ("" if it can); ValueError if it would leave the workspace."""
    path = safe_relative(file)
    if files and any(safe_relative(name) == path for name in files):
        return ""
    if not (Path(workspace) / path).is_file():
        return f"{file} is missing from your workspace ({workspace})"
    return ""
