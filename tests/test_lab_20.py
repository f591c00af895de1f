"""Lab 20 (scaling): answers the proof's cases do not hold, judged right on real servers.

Other correct answers must pass: a breaker whose trial is a non-blocking lock, one that
fails fast by raising the last error again, a pool that counts the connections it made
instead of a semaphore, sessions as a Redis hash with another client set-up, a degraded
answer decided in sessions.py. Other wrong ones must fail and say why: a breaker that
reads time.monotonic instead of the clock it is given, a pool too big for the budget, a
service that forks workers with a pool each, one that sheds load with empty pages. The
lab is seeded into a database of this module's own on the machine's PostgreSQL; each run
gets its own key prefix on the machine's Redis. The proof runs in test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.services import postgres
from sdtutor.services.redis import client, delete_prefix
from tests.conftest import REPO, SYSTEM_REDIS

LAB_DIR = REPO / "labs" / "20-scaling"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").glob("*.py")}


@pytest.fixture(scope="module")
def database(system_postgres: str) -> Iterator[str]:
    name = f"sdtutor_test_scaling_{secrets.token_hex(3)}"
    postgres.create_database(system_postgres, name)
    try:
        url = postgres.with_database(system_postgres, name)
        postgres.run_setup(url, LAB_DIR / "setup.sql")
        yield url
    finally:
        postgres.drop_database(system_postgres, name)


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    return load_lab(LAB_DIR)


def judge(lab: LabSpec, database: str, check_id: str, files: dict[str, str]) -> CheckResult:
    """One check over a workspace that is the solution with `files` laid over it."""
    only = dataclasses.replace(lab, checks=tuple(c for c in lab.checks if c.id == check_id))
    prefix = f"sdtutor-test-scaling:{secrets.token_hex(4)}:"
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab20-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        try:
            [result] = run_checks(
                only,
                workspace,
                {"postgres": database, "redis": SYSTEM_REDIS},
                prefixes={"redis": prefix},
                deadline=60,
            )
        finally:
            admin = client(SYSTEM_REDIS)
            delete_prefix(admin, prefix)
            admin.close()
    return result


def variant(file: str, *edits: tuple[str, str]) -> str:
    """A solution file with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION[file]
    for old, new in edits:
        assert old in text, f"the solution's {file} no longer has {old!r}"
        text = text.replace(old, new)
    return text


# ------------------------------------------------------------------ correct other ways

BREAKER_TRY_LOCK = '''
import threading
import time


class CircuitOpenError(Exception):
    pass


class CircuitBreaker:
    """The trial is whoever wins a non-blocking acquire of a lock."""

    def __init__(self, failure_threshold=3, reset_timeout=1.0, clock=time.monotonic):
        self.threshold = failure_threshold
        self.cooldown = reset_timeout
        self.clock = clock
        self.streak = 0
        self.open_until = None
        self.trial = threading.Lock()

    def call(self, fn, *args, **kwargs):
        if self.open_until is not None:
            if self.clock() < self.open_until or not self.trial.acquire(blocking=False):
                raise CircuitOpenError("open")
            try:
                result = fn(*args, **kwargs)
            except Exception:
                self.open_until = self.clock() + self.cooldown
                raise
            finally:
                self.trial.release()
            self.open_until, self.streak = None, 0
            return result
        try:
            result = fn(*args, **kwargs)
        except Exception:
            self.streak += 1
            if self.streak >= self.threshold:
                self.open_until = self.clock() + self.cooldown
            raise
        self.streak = 0
        return result
'''

DB_COUNTED = '''
import os
import queue
import threading
from contextlib import contextmanager

import psycopg

DATABASE_URL = os.environ["DATABASE_URL"]
POOL_SIZE = 10
_idle = queue.Queue()
_made = 0
_lock = threading.Lock()


@contextmanager
def connection():
    """Open a connection while fewer than POOL_SIZE exist; otherwise wait for one."""
    global _made
    with _lock:
        make = _made < POOL_SIZE and _idle.empty()
        if make:
            _made += 1
    conn = psycopg.connect(DATABASE_URL, autocommit=True) if make else _idle.get(timeout=20)
    try:
        yield conn
    finally:
        _idle.put(conn)
'''

SESSIONS_HASH = variant(
    "sessions.py",
    (
        "import redis\n",
        "import redis\nfrom redis.backoff import NoBackoff\nfrom redis.retry import Retry\n",
    ),
    ("    retry=None,\n", "    retry=Retry(NoBackoff(), 0),\n"),
    (
        "_breaker.call(_redis.set, _key(token), user, ex=SESSION_SECONDS)",
        "_breaker.call(_store, _key(token), user)",
    ),
    (
        "_breaker.call(_redis.get, _key(token))",
        '_breaker.call(_redis.hget, _key(token), "user")',
    ),
    (
        "def create(",
        "def _store(key: str, user: str) -> None:\n"
        "    with _redis.pipeline() as pipe:\n"
        '        pipe.hset(key, mapping={"user": user})\n'
        "        pipe.expire(key, SESSION_SECONDS)\n"
        "        pipe.execute()\n\n\n"
        "def create(",
    ),
)

SESSIONS_DEGRADE_INSIDE = variant(
    "sessions.py",
    (
        "    except (CircuitOpenError, redis.RedisError) as exc:\n"
        "        raise Unavailable(str(exc)) from exc\n    return user",
        "    except (CircuitOpenError, redis.RedisError):\n"
        "        return None  # treat the visitor as logged out while Redis is away\n"
        "    return user",
    ),
)

# Fails fast by raising the dependency's last error again instead of CircuitOpenError.
BREAKER_RERAISES = variant(
    "breaker.py",
    (
        'raise CircuitOpenError("open: not calling the dependency")',
        "raise self.last",
    ),
    (
        "        except Exception:\n            with self._lock:",
        "        except Exception as exc:\n"
        "            self.last = exc\n"
        "            with self._lock:",
    ),
    (
        'raise CircuitOpenError("half-open: a trial call is already running")',
        "raise self.last",
    ),
)

CORRECT: dict[str, tuple[str, dict[str, str]]] = {
    "breaker-reraises-last-error": ("breaker", {"breaker.py": BREAKER_RERAISES}),
    "breaker-try-lock": ("breaker", {"breaker.py": BREAKER_TRY_LOCK}),
    "pool-counted": ("pool-bounded", {"db.py": DB_COUNTED}),
    "sessions-hash": ("sessions-shared", {"sessions.py": SESSIONS_HASH}),
    "sessions-hash-outage": ("redis-down-degrades", {"sessions.py": SESSIONS_HASH}),
    "degrade-in-sessions": (
        "redis-down-degrades",
        {
            "sessions.py": SESSIONS_DEGRADE_INSIDE,
            "app.py": (LAB_DIR / "starter/app.py").read_text(),
        },
    ),
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, lab: LabSpec, database: str) -> None:
    check_id, files = CORRECT[name]
    result = judge(lab, database, check_id, files)
    assert result.passed, result.message


# ------------------------------------------------------------------ wrong other ways

WRONG: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = {
    # Reads the wall clock, not the one it was given: under the checker's fake clock the
    # cool-down never ends, exactly as it would never be testable.
    "breaker-ignores-clock": (
        "breaker",
        {
            "breaker.py": variant(
                "breaker.py",
                ("if self.clock() - self.opened_at", "if time.monotonic() - self.opened_at"),
                ("self.opened_at = self.clock()", "self.opened_at = time.monotonic()"),
            )
        },
        ("never half-opens",),
    ),
    # Forks three more workers on the same socket, each with its own pool of 10.
    "forks-workers": (
        "pool-bounded",
        {
            "app.py": variant(
                "app.py",
                (
                    '    Server(("127.0.0.1", port), Handler).serve_forever()',
                    '    server = Server(("127.0.0.1", port), Handler)\n'
                    "    for _ in range(3):\n"
                    "        if os.fork() == 0:\n"
                    "            break\n"
                    "    server.serve_forever()",
                ),
            )
        },
        ("the budget is 10",),
    ),
    "pool-too-big": (
        "pool-bounded",
        {"db.py": variant("db.py", ("POOL_SIZE = 10\n", "POOL_SIZE = 50\n"))},
        ("the budget is 10",),
    ),
    # Lies under load: a request that finds no free connection answers an empty page.
    "sheds-load-with-empty-pages": (
        "pool-bounded",
        {
            "app.py": variant(
                "app.py",
                (
                    "        with db.connection() as conn:\n"
                    '            rows = conn.execute("SELECT id, name, price FROM items'
                    ' ORDER BY id LIMIT 5").fetchall()\n',
                    "        try:\n"
                    "            with db.connection() as conn:\n"
                    '                rows = conn.execute("SELECT id, name, price FROM items '
                    'ORDER BY id LIMIT 5").fetchall()\n'
                    "        except TimeoutError:\n"
                    "            rows = []\n",
                ),
            ),
            "db.py": variant(
                "db.py", ("_slots.acquire(timeout=10)", "_slots.acquire(timeout=0.01)")
            ),
        },
        ("requests failed", "should wait for a"),
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, lab: LabSpec, database: str) -> None:
    check_id, files, says = WRONG[name]
    result = judge(lab, database, check_id, files)
    assert not result.passed and result.status != "error", result.message
    for phrase in says:
        assert phrase in result.message.lower(), result.message
