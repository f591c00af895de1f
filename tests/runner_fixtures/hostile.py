"""Learner code that misbehaves on purpose (tests/test_runner.py)."""

import contextlib
import json
import os
import sys
import time
from pathlib import Path


def spin():
    while True:
        pass


def sleeper():
    time.sleep(1000)


def chatty_hang():
    print("still thinking")  # no flush: the runner must still show it
    time.sleep(1000)


def _detach(close_pipes):
    """setsid + double fork: a grandchild that sleeps forever; returns its pid."""
    pid_file = os.path.join(os.environ["TMPDIR"], "escapee.pid")
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            with open(pid_file, "w") as f:
                f.write(str(os.getpid()))
            if close_pipes:
                for fd in range(0, 1024):
                    with contextlib.suppress(OSError):
                        os.close(fd)
            time.sleep(1000)
        os._exit(0)
    os.waitpid(pid, 0)
    for _ in range(200):
        text = Path(pid_file).read_text() if os.path.exists(pid_file) else ""
        if text:
            return int(text)
        time.sleep(0.01)
    raise RuntimeError("the grandchild did not start")


def escape():
    return _detach(close_pipes=False)


def escape_closed():
    return _detach(close_pipes=True)


def escape_then_hang():
    print("escapee", _detach(close_pipes=False), flush=True)
    time.sleep(1000)


def forkbomb():
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.001)


def bigalloc():
    return len(bytearray(10 * 1024**3))


def burn_cpu():
    x = 0
    while True:
        x += 1


def flood():
    chunk = "x" * 1_000_000 + "\n"
    for _ in range(100):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    return "flooded"


def forge(conn):
    """Run two statements, try every way to claim success, then fail."""
    conn.execute("SELECT 'real 1'")
    conn.execute("SELECT 'real 2'")
    fake = json.dumps({"ok": True, "value": "FORGED", "error": "", "traceback": ""}).encode()
    frame = b"R%d\n" % len(fake) + fake
    report = {"t": "end", "limit": "", "killed": 0, "children": [], "statements": 0}
    print(json.dumps(report), flush=True)
    for fd in range(0, 1024):
        with contextlib.suppress(OSError):
            os.write(fd, frame)
    try:
        with open("/proc/self/fd/0", "wb") as spec:
            spec.write(frame)
    except OSError:
        pass
    raise RuntimeError("the real outcome")


def exits():
    os._exit(3)


def values():
    import collections
    import datetime
    import decimal
    import uuid

    point = collections.namedtuple("Point", "x y")
    return {
        "decimal": decimal.Decimal("1.50"),
        "when": datetime.datetime(2024, 5, 1, 12, 30),
        "day": datetime.date(2024, 5, 1),
        "tuple": (1, 2),
        "uuid": uuid.UUID(int=1),
        "point": point(3, 4),
        1: "int key",
        "set": {1},
        "nan": float("nan"),
    }


def identity(*args, **kwargs):
    return {"args": args, "kwargs": kwargs}


def environment():
    return {
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path": sys.path,
        "stdin": sys.stdin.read(),
        "flags": sys.flags.isolated,
    }


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


def write_workspace():
    try:
        with open("solution_note.txt", "w") as f:
            f.write("written")
        return "written"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"


def str_hash():
    return hash("the same in every process?")
