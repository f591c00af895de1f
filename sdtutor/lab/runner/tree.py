"""The learner's process tree, read from /proc (Linux), and how to end all of it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable

HAVE_PROC = os.path.isdir("/proc/self")


def scan() -> dict[int, tuple[int, str]]:
    """Every process on the machine: pid -> (parent pid, state letter)."""
    table: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 2)
        table[int(name)] = (int(fields[1]), fields[0].decode())
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """Live (not zombie) processes below `root`."""
    table = scan() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if table[pid][1] not in ("Z", "X"):
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_tree(root: int, reap: Callable[[], object] = lambda: None, rounds: int = 500) -> set[int]:
    """SIGKILL every process below `root`, again and again until none is left; the pids killed.

    New children forked meanwhile, and orphans re-parented to `root` (a subreaper), are
    found on the next round. `reap` collects `root`'s dead children between rounds.
    """
    killed: set[int] = set()
    quiet = 0
    for _ in range(rounds):
        alive = descendants(root)
        if not alive:
            quiet += 1
            if quiet >= 2:
                break
            time.sleep(0.002)
            continue
        quiet = 0
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        reap()
        time.sleep(0.002)
    reap()
    return killed


def parent_of(pid: int) -> int | None:
    """The parent pid of a live or zombie process; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split(b" ", 2)
    return int(fields[1])


def pids_with_token(token: str) -> list[int]:
    """Processes whose environment carries `token` (only those this user may read)."""
    needle = token.encode()
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ:
            found.append(int(name))
    return found


def kill_token(token: str, rounds: int = 20) -> int:
    """Kill every process tagged with `token` (the last sweep); how many were killed."""
    if not HAVE_PROC:
        return 0
    killed: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in pids_with_token(token) if _alive(p)]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    return len(killed)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def tasks_of_user(uid: int) -> int:
    """Threads (tasks) running as `uid`: what RLIMIT_NPROC counts."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid == uid:
                total += len(os.listdir(f"/proc/{name}/task"))
        except OSError:
            continue
    return total


def vm_peak_kb(pids: Iterable[int]) -> int:
    """The largest VmPeak (address space high-water mark) among `pids`, in kB."""
    peak = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmPeak:"):
                        peak = max(peak, int(line.split()[1]))
                        break
        except (OSError, ValueError):
            continue
    return peak
