"""The supervisor: starts the harness(es), watches the whole tree, and ends all of it.

Started by the parent as `python -I -B -m sdtutor.lab.runner.supervisor`, with a spec
(one JSON line) on stdin. It makes itself a child subreaper (Linux), so every descendant
that double-forks or calls setsid is re-parented to it rather than to init, and it can
always find the whole tree by walking /proc from its own pid. It enforces the deadline
and the process count, releases workers at the start barrier, relays output within
bounds, and at the end kills every descendant, round after round until none is left,
then every process tagged with the run's token. It reports to the parent on its own
stdout, which no learner process inherits, in JSON lines:

    {"t": "out", "i": 0, "d": "..."}      service mode: output, as it comes
    {"t": "end", ...}                      last line: what happened (see `_report`)

Its stdin stays open as a lifeline: "term" / "kill" lines stop a service; end-of-file
(the parent died or gave up) kills everything. Without /proc (not Linux) it falls back
to killing the harness's process group, and cannot count processes.

Workers: on Linux one harness loads everything once and forks the N workers (see
harness.py); it sends each worker's pid on a pipe and exits, so the workers are
re-parented to the supervisor, which reaps them and takes their exit status and CPU time
itself. A pid line is believed only for a child of the forking harness (or an orphan
already adopted), once per worker. Each worker has its own output and result pipes, all
made here. Without a subreaper (not Linux) each worker is a harness of its own, as a call.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from typing import Any

from sdtutor.lab.runner import tree
from sdtutor.lab.runner.limits import apply_rlimits
from sdtutor.lab.runner.protocol import MAX_RESULT, READY

PR_SET_CHILD_SUBREAPER = 36
FORK_HARNESS = False
"""Set by the zygote (zygote.py): fork each harness from this process instead of starting
an interpreter for it."""
_terminated = False
SCAN_EVERY = 0.05
DRAIN_FOR = 0.3
MAX_ORPHANS = 65536


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); False where that is not possible."""
    if sys.platform != "linux":
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


class Child:
    """One harness process (or forked worker) and the pipes the supervisor reads."""

    def __init__(
        self, index: int, proc: subprocess.Popen[bytes] | None, out_r: int, res_r: int
    ) -> None:
        self.index = index
        self.proc = proc
        self.pid: int | None = proc.pid if proc is not None else None
        """None for a forked worker until the forking harness names it."""
        self.out_r: int | None = out_r
        self.res_r: int | None = res_r
        self.spec = b""
        self.output = bytearray()
        self.output_total = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.result = bytearray()
        self.result_over = False
        self.status: int | None = None
        self.cpu = 0.0
        self.peak_kb = 0
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.ended_at: float | None = None


class ForkedHarness:
    """A harness forked from this (zygote-forked) supervisor: what the supervisor uses of a
    Popen. The child takes, in the same order, the steps subprocess takes before an exec:
    a new session, its pipes on 0-2, every other descriptor closed but `pass_fds`, groups,
    gid, uid, then `preexec` (the rlimits), the folder and the environment."""

    def __init__(
        self,
        out_w: int,
        pass_fds: list[int],
        cwd: str,
        env: dict[str, str],
        uid: int | None,
        gid: int | None,
        preexec: Any,
    ) -> None:
        in_r, in_w = os.pipe()
        try:
            self.pid = os.fork()
        except BaseException:
            for fd in (in_r, in_w, out_w):
                os.close(fd)
            raise
        if self.pid == 0:
            self._become_harness(in_r, out_w, pass_fds, cwd, env, uid, gid, preexec)
        os.close(in_r)
        os.close(out_w)
        self.stdin: Any = os.fdopen(in_w, "wb")
        self.returncode: int | None = None

    @staticmethod
    def _become_harness(
        in_r: int,
        out_w: int,
        pass_fds: list[int],
        cwd: str,
        env: dict[str, str],
        uid: int | None,
        gid: int | None,
        preexec: Any,
    ) -> None:
        code = 127
        try:
            os.setsid()
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            low = 3
            for fd in sorted({fd for fd in pass_fds if fd > 2}):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, os.sysconf("SC_OPEN_MAX"))
            for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in any Python process
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if uid is not None:
                os.setgroups([])
                os.setgid(gid if gid is not None else uid)
                os.setuid(uid)
            preexec()
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            from sdtutor.lab.runner import harness

            harness.main()  # ends the process itself
        except BaseException:
            with contextlib.suppress(BaseException):
                traceback.print_exc()
        finally:
            os._exit(code)


class Supervisor:
    """Runs one spec; see the module docstring."""

    def __init__(self, spec: dict[str, Any], stdin_rest: bytes) -> None:
        self.spec = spec
        self.mode: str = spec["mode"]
        self.limits: dict[str, Any] = spec["limits"]
        self.children: list[Child] = []
        self.by_pid: dict[int, Child] = {}
        self.sel = selectors.DefaultSelector()
        self.stdin_buf = stdin_rest
        self.lifeline_open = True
        self.stop_reason = ""
        self.limit = ""
        self.max_processes = 0
        self.go_w: int | None = None
        self.released_at: float | None = None
        self.term_deadline: float | None = None
        self.subreaper = become_subreaper()
        self.error = ""
        self.forker: Child | None = None
        """The harness that forks the workers (workers on Linux)."""
        self.pid_lines = b""
        self.orphans: dict[int, tuple[int, float, float]] = {}
        """Reaped pids not (yet) named as workers: (status, cpu, when)."""

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Start every harness (or the one that forks the workers) and hand each its spec."""
        go_r = None
        if self.mode == "workers":
            go_r, self.go_w = os.pipe()
        if go_r is not None and self.subreaper and tree.HAVE_PROC:
            self._start_forker(go_r)
        else:
            for index, child_spec in enumerate(self.spec["children"]):
                out_r, out_w = os.pipe()
                res_r, res_w = os.pipe()
                pass_fds = [res_w] + ([go_r] if go_r is not None else [])
                child_spec = {**child_spec, "result_fd": res_w, "go_fd": go_r}
                proc = self._spawn(out_w, pass_fds, child_spec)
                os.close(res_w)
                self._watch(Child(index, proc, out_r, res_r), child_spec)
        if go_r is not None:
            os.close(go_r)
        os.set_blocking(0, False)
        self.sel.register(0, selectors.EVENT_READ, None)

    def _start_forker(self, go_r: int) -> None:
        """One harness that loads once and forks a worker per child spec."""
        workers = []
        pass_fds = [go_r]
        for index, child_spec in enumerate(self.spec["children"]):
            out_r, out_w = os.pipe()
            res_r, res_w = os.pipe()
            workers.append({"args": child_spec["args"], "result_fd": res_w, "out_fd": out_w})
            pass_fds += [res_w, out_w]
            child = Child(index, None, out_r, res_r)
            self.children.append(child)
            for fd in (out_r, res_r):
                os.set_blocking(fd, False)
                self.sel.register(fd, selectors.EVENT_READ, child)
        pids_r, pids_w = os.pipe()
        out_r, out_w = os.pipe()
        common = {k: v for k, v in self.spec["children"][0].items() if k != "args"}
        spec = {**common, "mode": "fork", "go_fd": go_r, "pids_fd": pids_w, "workers": workers}
        try:
            proc = self._spawn(out_w, [*pass_fds, pids_w], spec)
        finally:
            for fd in [*pass_fds[1:], pids_w]:
                os.close(fd)
        self.forker = Child(-1, proc, out_r, pids_r)
        self._watch(self.forker, spec, listed=False)

    def _spawn(self, out_w: int, pass_fds: list[int], spec: dict[str, Any]) -> Any:
        """Start one harness as the learner (closes `out_w` here)."""
        nproc = None
        uid = self.spec.get("uid")
        if uid is not None and self.spec.get("nproc_budget"):
            nproc = tree.tasks_of_user(uid) + int(self.spec["nproc_budget"])
        limits = self.limits

        def preexec() -> None:
            apply_rlimits(limits["cpu_seconds"], limits["memory_mb"], nproc)

        if FORK_HARNESS:
            return ForkedHarness(
                out_w, pass_fds, self.spec["cwd"], self.spec["env"], uid, self.spec["gid"], preexec
            )
        try:
            return subprocess.Popen(
                self.spec["argv"],
                stdin=subprocess.PIPE,
                stdout=out_w,
                stderr=out_w,
                pass_fds=pass_fds,
                cwd=self.spec["cwd"],
                env=self.spec["env"],
                start_new_session=True,
                preexec_fn=preexec,
                **(
                    {"user": uid, "group": self.spec["gid"], "extra_groups": []}
                    if uid is not None
                    else {}
                ),
            )
        finally:
            os.close(out_w)

    def _watch(self, child: Child, spec: dict[str, Any], listed: bool = True) -> None:
        """Read the child's pipes and write its spec to its stdin."""
        proc = child.proc
        assert proc is not None and proc.stdin is not None and child.pid is not None
        child.spec = json.dumps(spec).encode()
        if listed:
            self.children.append(child)
        self.by_pid[child.pid] = child
        for fd in (child.out_r, child.res_r):
            assert fd is not None
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, child)
        os.set_blocking(proc.stdin.fileno(), False)
        self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, child)

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """Watch until the harnesses end, a limit is hit, or the parent says stop."""
        timeout = self.limits.get("timeout") if self.mode != "service" else None
        deadline = time.monotonic() + timeout if timeout else None
        next_scan = 0.0
        while not self.stop_reason:
            if _terminated:
                self.stop_reason = "abandoned"
                break
            now = time.monotonic()
            wait = SCAN_EVERY
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - now))
            for key, events in self.sel.select(wait):
                self._on_event(key, events)
            self._reap()
            now = time.monotonic()
            if all(c.status is not None for c in self.children):
                self.stop_reason = "ended"
            elif deadline is not None and now >= deadline:
                self.stop_reason, self.limit = "timeout", "timeout"
            elif self.term_deadline is not None and now >= self.term_deadline:
                self.stop_reason = "killed"
            elif now >= next_scan:
                next_scan = now + SCAN_EVERY
                self._scan()
            self._maybe_release()

    def _on_event(self, key: selectors.SelectorKey, events: int) -> None:
        fd = int(key.fd)
        child: Child | None = key.data
        if child is None:
            self._read_lifeline()
            return
        if events & selectors.EVENT_WRITE:
            self._write_spec(child, fd)
            return
        self._read_child(child, fd)

    def _write_spec(self, child: Child, fd: int) -> None:
        try:
            sent = os.write(fd, child.spec)
        except BlockingIOError:
            return
        except OSError:
            sent = len(child.spec)
        child.spec = child.spec[sent:]
        if not child.spec:
            self.sel.unregister(fd)
            assert child.proc is not None and child.proc.stdin is not None
            with contextlib.suppress(OSError):
                child.proc.stdin.close()

    def _read_child(self, child: Child, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(fd)
            os.close(fd)
            if fd == child.out_r:
                child.out_r = None
            else:
                child.res_r = None
            return
        if fd == child.out_r:
            self._keep_output(child, data)
        elif child is self.forker:
            self._read_pids(data)
        else:
            if not child.result and data.startswith(READY):
                child.ready_at = time.monotonic()
            if len(child.result) + len(data) > MAX_RESULT + 64:
                child.result_over = True
            else:
                child.result += data

    def _read_pids(self, data: bytes) -> None:
        """Name workers from the forking harness's "index pid" lines; others are ignored."""
        self.pid_lines = (self.pid_lines + data)[-65536:]
        forker = self.forker
        assert forker is not None
        while b"\n" in self.pid_lines:
            line, _, self.pid_lines = self.pid_lines.partition(b"\n")
            parts = line.split()
            if len(parts) != 2 or not all(p.isdigit() and len(p) < 10 for p in parts):
                continue
            index, pid = int(parts[0]), int(parts[1])
            if index >= len(self.children) or self.children[index].pid is not None:
                continue
            if pid in self.by_pid:
                continue
            orphan = self.orphans.pop(pid, None)
            if orphan is None and tree.parent_of(pid) not in (forker.pid, os.getpid()):
                continue
            child = self.children[index]
            child.pid = pid
            self.by_pid[pid] = child
            if orphan is not None:
                self._ended(child, *orphan)

    def _ended(self, child: Child, status: int, cpu: float, when: float) -> None:
        child.status = status
        child.cpu = cpu
        child.ended_at = when
        if child.proc is not None:
            child.proc.returncode = os.waitstatus_to_exitcode(status)

    def _forker_ended(self) -> None:
        """Read the last pid lines; a worker never named never started: it ends with it."""
        forker = self.forker
        assert forker is not None and forker.status is not None
        while forker.res_r is not None:
            try:
                data = os.read(forker.res_r, 65536)
            except BlockingIOError:
                break  # not possible once the writer is gone; be safe anyway
            except OSError:
                data = b""
            if not data:
                self.sel.unregister(forker.res_r)
                os.close(forker.res_r)
                forker.res_r = None
                break
            self._read_pids(data)
        for child in self.children:
            if child.pid is None and child.status is None:
                self._ended(child, forker.status, 0.0, time.monotonic())

    def _keep_output(self, child: Child, data: bytes) -> None:
        child.output_total += len(data)
        if self.mode == "service":
            self._emit({"t": "out", "i": child.index, "d": child.decoder.decode(data)})
            return
        room = self.limits["output_bytes"] - len(child.output)
        if room > 0:
            child.output += data[:room]

    def _read_lifeline(self) -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(0)
            self.lifeline_open = False
            self.stop_reason = self.stop_reason or "abandoned"
            return
        self.stdin_buf += data
        while b"\n" in self.stdin_buf:
            line, _, self.stdin_buf = self.stdin_buf.partition(b"\n")
            command = line.strip().decode(errors="replace")
            if command == "kill":
                self.stop_reason = "killed"
            elif command.startswith("term"):
                grace = float(command.split()[1]) if " " in command else 5.0
                for child in self.children:  # its process group: a server's own workers too
                    if child.proc is not None:
                        with contextlib.suppress(OSError):
                            os.killpg(child.proc.pid, signal.SIGTERM)
                self.term_deadline = time.monotonic() + grace

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            cpu, now = usage.ru_utime + usage.ru_stime, time.monotonic()
            child = self.by_pid.get(pid)
            if child is None:
                # Maybe a worker whose pid line is still unread (bounded: a learner's own
                # processes are reaped here too).
                if self.forker is not None and len(self.orphans) < MAX_ORPHANS:
                    self.orphans[pid] = (status, cpu, now)
                continue
            if child.status is not None:
                continue
            self._ended(child, status, cpu, now)
            if child is self.forker:
                self._forker_ended()
            elif self.mode == "service" and child.proc is not None:
                code = child.proc.returncode
                self._emit({"t": "exit", "i": child.index, "exit_code": code})

    def _scan(self) -> None:
        if not tree.HAVE_PROC:
            return
        live = tree.descendants(os.getpid())
        self.max_processes = max(self.max_processes, len(live))
        # Each worker may hold Limits.processes; the forking harness is one more.
        allowed = self.limits["processes"] * len(self.children) + (self.forker is not None)
        if len(live) > allowed:
            self.stop_reason, self.limit = "processes", "processes"
        for child in self.children:
            if child.status is None and child.pid is not None:
                child.peak_kb = max(child.peak_kb, tree.vm_peak_kb([child.pid]))

    def _maybe_release(self) -> None:
        if self.go_w is None or self.released_at is not None:
            return
        if all(c.ready_at is not None or c.status is not None for c in self.children):
            # One write of N bytes wakes every worker blocked on the shared pipe at once.
            with contextlib.suppress(OSError):
                os.write(self.go_w, b"G" * len(self.children))
            self.released_at = time.monotonic()

    # ------------------------------------------------------------------ end

    def finish(self) -> None:
        """Kill the whole tree, drain the pipes, and send the report."""
        for key in list(self.sel.get_map().values()):
            if key.data is None or key.events & selectors.EVENT_WRITE:
                self.sel.unregister(key.fd)
        harness_pids = {c.pid for c in self._everyone() if c.pid is not None}
        killed: set[int] = set()
        if tree.HAVE_PROC:
            killed = tree.kill_tree(os.getpid(), self._reap)
        for child in self._everyone():  # the process group: the only sweep without /proc
            if child.proc is not None:
                with contextlib.suppress(OSError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
        swept = tree.kill_token(self.spec["token"]) if self.spec.get("token") else 0
        self._reap()
        self._drain()
        for child in self._everyone():
            if child.status is None and child.pid is not None:  # killed but not yet reaped
                with contextlib.suppress(ChildProcessError):
                    _, status, usage = os.wait4(child.pid, 0)
                    child.status = status
                    child.cpu = usage.ru_utime + usage.ru_stime
                    child.ended_at = time.monotonic()
        self._emit(self._report(len(killed - harness_pids) + swept))

    def _drain(self) -> None:
        until = time.monotonic() + DRAIN_FOR
        while time.monotonic() < until:
            open_fds = [fd for c in self._everyone() for fd in (c.out_r, c.res_r) if fd is not None]
            if not open_fds:
                return
            for key, events in self.sel.select(max(0.0, until - time.monotonic())):
                if key.data is not None and events & selectors.EVENT_READ:
                    self._read_child(key.data, int(key.fd))

    def _everyone(self) -> list[Child]:
        return self.children + ([self.forker] if self.forker is not None else [])

    def _report(self, killed: int) -> dict[str, Any]:
        children = []
        # What the forking harness printed (the module's import) heads every worker's output.
        head = bytes(self.forker.output) if self.forker is not None else b""
        head_total = self.forker.output_total if self.forker is not None else 0
        for child in self.children:
            exit_code = None if child.status is None else os.waitstatus_to_exitcode(child.status)
            output = (head + bytes(child.output))[: self.limits["output_bytes"]]
            start = self.released_at or child.ready_at or child.started
            children.append(
                {
                    "exit_code": exit_code,
                    "limit": self._limit_of(child, exit_code),
                    "result": base64.b64encode(bytes(child.result)).decode(),
                    "result_over": child.result_over,
                    "output": output.decode("utf-8", errors="replace"),
                    "output_truncated": head_total + child.output_total > len(output)
                    and self.mode != "service",
                    "seconds": round((child.ended_at or time.monotonic()) - start, 6),
                    "cpu": round(child.cpu, 3),
                    "peak_kb": child.peak_kb,
                }
            )
        return {
            "t": "end",
            "reason": self.stop_reason,
            "limit": self.limit,
            "killed": killed,
            "max_processes": self.max_processes,
            "released": self.released_at is not None,
            "subreaper": self.subreaper,
            "children": children,
            "error": self.error,
        }

    def _limit_of(self, child: Child, exit_code: int | None) -> str:
        if self.limit:
            return self.limit
        if exit_code == -signal.SIGXCPU or (
            exit_code == -signal.SIGKILL and child.cpu >= self.limits["cpu_seconds"] - 0.5
        ):
            return "cpu"
        abnormal = exit_code != 0
        if abnormal and child.peak_kb >= 0.9 * self.limits["memory_mb"] * 1024:
            return "memory"
        return ""

    def _emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=True).encode() + b"\n"
        try:
            view = memoryview(line)
            while view:
                try:
                    view = view[os.write(1, view) :]
                except BlockingIOError:
                    time.sleep(0.001)
        except OSError:
            pass  # the parent is gone: carry on cleaning up


def _read_spec() -> tuple[dict[str, Any], bytes]:
    buf = b""
    while b"\n" not in buf:
        data = os.read(0, 65536)
        if not data:
            raise SystemExit("no spec on stdin")
        buf += data
    line, _, rest = buf.partition(b"\n")
    return json.loads(line), rest


def _on_sigterm(signum: int, frame: object) -> None:
    global _terminated
    _terminated = True  # treated like a lost lifeline: kill everything and report


def main() -> int:
    """Read the spec, run it, report; any failure to start is reported too."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec, rest = _read_spec()
    supervisor = Supervisor(spec, rest)
    try:
        if spec.get("expose") or spec.get("hide"):
            from sdtutor.lab.runner.isolation import enter_namespace

            enter_namespace(spec.get("expose", []), spec.get("hide", []))
        supervisor.start()
    except Exception as exc:
        supervisor.stop_reason = "failed"
        supervisor.error = f"{type(exc).__name__}: {exc}"
        supervisor.finish()
        return 1
    supervisor.run()
    supervisor.finish()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # nothing is left to tidy; skip the interpreter's teardown
