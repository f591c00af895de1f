"""A warm process that forks the runner's supervisors, so a run starts no interpreter.

Each run of learner code used to start two fresh interpreters: the supervisor, and the
harness, which then imported the client libraries (psycopg, redis, pika: about 0.25 s of
CPU each). That was most of a lab check's CPU: a lab's proof calls learner code hundreds
of times. The zygote is started once per checker process (`python -I -B -u`, like the
harness), imports the runner (and each of those libraries before the first run whose
services need it: PRELOAD), and then only forks: a supervisor per run, which forks its
harness in turn (`supervisor.FORK_HARNESS`), with the steps an exec would have taken (a
new session, no descriptor but its own, the learner's groups, gid, uid, rlimits, folder
and environment). Nothing about what the learner's code may do changes; what a fork
keeps that an exec would not:

- The zygote never runs learner code and holds nothing secret: it starts with a minimal
  environment and receives only three pipe ends per run (the supervisor's stdin, stdout
  and stderr) over a socket its parent holds. A harness inherits its supervisor's memory
  (the run's own spec, which its environment carries anyway).
- /proc/PID/environ of a forked process shows the zygote's environment, not the run's
  tag. Processes the learner's code starts with exec carry the tag as before (the
  harness sets os.environ); for the others the zygote is a child subreaper: a process
  left behind by a supervisor that died is adopted by the zygote, which kills it.
- A harness starts with the zygote's address space, counted in `Limits.memory_mb`.

The parent's side is `Zygote` (one per process, started on first use, see launch.py).
When the parent goes, the zygote reads end-of-file on its socket, kills everything it
started and exits.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import IO

PRELOAD = {"DATABASE_URL": "psycopg", "REDIS_URL": "redis", "AMQP_URL": "pika"}
"""The client library for each kind of service a run's environment names: the zygote
imports it before the first fork that needs it (a lab without Redis never pays for redis)."""
POLL = 0.2
"""Seconds between the zygote's looks for ended supervisors and adopted orphans."""


# ---------------------------------------------------------------------- the zygote


def _children() -> list[int]:
    """This (single-threaded) process's live children, from /proc."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children", "rb") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_strays(supervisors: set[int]) -> None:
    """Kill every child that is not a supervisor of ours (an orphan we adopted) and its tree."""
    from sdtutor.lab.runner import tree

    for pid in _children():
        if pid in supervisors:
            continue
        for victim in [*tree.descendants(pid), pid]:
            with contextlib.suppress(OSError):
                os.kill(victim, signal.SIGKILL)


def _fork_supervisor(fds: list[int]) -> int:
    """Fork a supervisor on the three given descriptors (its stdin, stdout and stderr)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # our socket and the fds received
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        from sdtutor.lab.runner import supervisor

        supervisor.FORK_HARNESS = True
        code = supervisor.main()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        os._exit(code)


def main() -> None:
    """Serve fork requests on the socket whose fd is argv[1] until the parent closes it."""
    from sdtutor.lab.runner import harness, supervisor, tree  # noqa: F401  (loaded once)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we end
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    supervisor.become_subreaper()
    ctl = socket.socket(fileno=int(sys.argv[1]))
    supervisors: set[int] = set()
    while True:
        ready, _, _ = select.select([ctl], [], [], POLL)
        _reap()
        live = set(_children())
        supervisors &= live
        if live - supervisors:
            _kill_strays(supervisors)
        if not ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(ctl, 256, 3)
        except OSError:
            break
        if not message:
            break
        for name in message.decode(errors="replace").split()[1:]:
            if name in PRELOAD.values() and name not in sys.modules:
                with contextlib.suppress(Exception):  # a missing library fails in the run
                    importlib.import_module(name)
        try:
            if len(fds) != 3:
                raise OSError(f"expected 3 descriptors, got {len(fds)}")
            pid = _fork_supervisor(fds)
            supervisors.add(pid)
            reply = b"%d\n" % pid
        except OSError as exc:
            reply = f"error {exc}\n".encode()
        finally:
            for fd in fds:
                os.close(fd)
        try:
            ctl.sendall(reply)
        except OSError:
            break
    # The parent is gone: end every run it left, then ourselves.
    tree.kill_tree(os.getpid(), _reap)
    os._exit(0)


# ---------------------------------------------------------------------- the parent's side


class Forked:
    """A supervisor forked by the zygote: what launch.Supervised needs of a Popen."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.stdout: IO[bytes] | None = stdout
        self._pidfd = os.pidfd_open(pid)
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the supervisor has ended (its status is the zygote's to reap)."""
        if self.returncode is None:
            ready, _, _ = select.select([self._pidfd], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired("supervisor", timeout or 0)
            self.returncode = 0
            os.close(self._pidfd)
        return self.returncode

    def __del__(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)


class Zygote:
    """The parent's handle on its zygote process."""

    def __init__(self, command: list[str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [*command, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                close_fds=True,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            )
        finally:
            theirs.close()
        self.sock = ours
        self.owner = os.getpid()
        """The process whose zygote this is (a forked copy of it must start its own)."""
        self._lock = threading.Lock()
        self._buf = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, stderr: IO[bytes], env: Mapping[str, str]) -> Forked:
        """Fork a supervisor whose stdin and stdout are new pipes to us; `env` is the
        learner's, whose service URLs say which client libraries to have loaded."""
        libraries = [module for variable, module in PRELOAD.items() if variable in env]
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            with self._lock:
                request = " ".join(["fork", *libraries]).encode()
                socket.send_fds(self.sock, [request], [in_r, out_w, stderr.fileno()])
                while b"\n" not in self._buf:
                    data = self.sock.recv(4096)
                    if not data:
                        raise OSError("the runner's zygote ended")
                    self._buf += data
                line, _, self._buf = self._buf.partition(b"\n")
            if not line.isdigit():
                raise OSError(line.decode(errors="replace"))
            forked = Forked(int(line), os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb", buffering=0))
        except BaseException:
            # A supervisor already forked reads end-of-file for its spec, and ends.
            for fd in (in_w, out_r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            os.close(in_r)
            os.close(out_w)
        return forked

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def usable() -> bool:
    """Whether this platform can run a zygote (Linux: pidfd, fd passing, subreaper)."""
    return (
        sys.platform == "linux"
        and hasattr(os, "pidfd_open")
        and hasattr(socket, "send_fds")
        and os.path.isdir("/proc/self")
    )


if __name__ == "__main__":
    main()
