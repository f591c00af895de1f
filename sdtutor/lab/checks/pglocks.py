"""Checker connections to PostgreSQL: timeouts, and naming the session that blocks one.

A learner who runs `BEGIN; UPDATE orders …` in `lab shell` and walks away holds a lock
until that transaction ends. Every checker connection carries `lock_timeout`, so a
check that needs a conflicting lock (CREATE INDEX, VACUUM, or anything under `LOCK
TABLE`) gives up within seconds; a watcher samples `pg_blocking_pids()` while a checker
statement runs, so the failure can name the blocking session and say how to end it.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from sdtutor.lab.checks.outcome import Blocked
from sdtutor.lab.results import Evidence

APPLICATION_NAME = "sdtutor-checker"


def connect_checker(
    url: str, statement_timeout: float, lock_timeout: float, *, autocommit: bool = True
) -> Any:
    """A psycopg connection with the checker's timeouts and name, parallel plans off.

    Raises psycopg.OperationalError when the server cannot be reached.
    """
    import psycopg  # costly import: only when a check talks to PostgreSQL

    options = " ".join(
        [
            f"-c statement_timeout={max(1, round(statement_timeout * 1000))}",
            f"-c lock_timeout={max(1, round(lock_timeout * 1000))}",
            # A checker left inside a scratch transaction must not hold locks for long.
            "-c idle_in_transaction_session_timeout=60000",
            # Parallel plans vary with the machine's load; the checker wants stable shapes.
            "-c max_parallel_workers_per_gather=0",
        ]
    )
    conn = psycopg.connect(
        url,
        autocommit=autocommit,
        connect_timeout=5,
        application_name=APPLICATION_NAME,
        options=options,
    )
    # No server-side prepared statements: a cached plan would ignore the session settings
    # a check changes (enable_indexscan, say), and a generic plan is not the one a learner
    # gets for their parameters.
    conn.prepare_threshold = None
    return conn


@dataclass(frozen=True)
class Session:
    """A PostgreSQL session that holds a lock a checker statement waits for."""

    pid: int
    state: str  # 'idle in transaction', 'active', …
    since: dt.datetime | None  # when its transaction (else its current state) began
    waited: dt.timedelta | None  # how long ago that was
    query: str  # its current or last statement
    user: str
    application: str
    client: str
    relations: str  # what the checker was waiting for, e.g. 'orders'

    def who(self) -> str:
        """`session 123 (psql, user alice)`."""
        extras = [x for x in (self.application, f"user {self.user}" if self.user else "") if x]
        return f"session {self.pid}" + (f" ({', '.join(extras)})" if extras else "")

    def doing(self) -> str:
        """`is idle in transaction since 14:02:11 (5 min 3 s ago); it last ran: UPDATE …`."""
        when = ""
        if self.since is not None:
            when = f" since {self.since.astimezone():%H:%M:%S}"
            if self.waited is not None:
                when += f" ({_ago(self.waited)} ago)"
        last = " ".join(self.query.split())
        if len(last) > 160:
            last = last[:157] + "..."
        ran = "is running" if self.state == "active" else "last ran"
        return f"is {self.state or 'busy'}{when}; it {ran}: {last or '(nothing)'}"


def _ago(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


_SESSION_COLUMNS = """
    a.pid, coalesce(a.state, ''), coalesce(a.xact_start, a.state_change),
    now() - coalesce(a.xact_start, a.state_change), coalesce(a.query, ''),
    coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
    coalesce(host(a.client_addr), 'local socket')
"""

BLOCKERS = f"""
SELECT {_SESSION_COLUMNS},
       coalesce((SELECT string_agg(DISTINCT l.relation::regclass::text, ', ')
                 FROM pg_locks l
                 WHERE l.pid = %(me)s AND NOT l.granted AND l.relation IS NOT NULL), '')
FROM pg_stat_activity a
WHERE a.pid = ANY(pg_blocking_pids(%(me)s))
ORDER BY a.pid
"""

# When no sample caught the wait (it ended between two samples): the sessions of this
# database that sit in a transaction holding more than a read lock on a table. A read
# (AccessShareLock) never blocks what a checker does.
SUSPECTS = f"""
SELECT DISTINCT {_SESSION_COLUMNS},
       coalesce((SELECT string_agg(DISTINCT l2.relation::regclass::text, ', ')
                 FROM pg_locks l2
                 WHERE l2.pid = a.pid AND l2.granted AND l2.locktype = 'relation'
                   AND l2.mode <> 'AccessShareLock'
                   AND l2.database = (SELECT oid FROM pg_database
                                      WHERE datname = current_database())), '')
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.mode <> 'AccessShareLock'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND a.xact_start IS NOT NULL
  AND a.pid <> ALL(%(ours)s)
ORDER BY 1
"""


def _sessions(rows: list[tuple[Any, ...]]) -> list[Session]:
    return [
        Session(
            pid=int(r[0]),
            state=str(r[1]),
            since=r[2],
            waited=r[3],
            query=str(r[4]),
            user=str(r[5]),
            application=str(r[6]),
            client=str(r[7]),
            relations=str(r[8]),
        )
        for r in rows
    ]


class LockWatch:
    """Samples, on its own connection, which sessions block the checker's statements."""

    def __init__(self, url: str, interval: float = 0.4) -> None:
        self.url = url
        self.interval = interval
        self._lock = threading.Lock()
        self._conn: Any = None
        self._watched: list[Any] = []
        self._seen: list[Session] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, conn: Any) -> None:
        """Watch this checker connection from now on (starts the sampling thread)."""
        with self._lock:
            self._watched.append(conn)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="sdtutor-lock-watch", daemon=True
                )
                self._thread.start()

    def forget(self) -> None:
        """Drop what earlier samples saw (at the start of each check)."""
        with self._lock:
            self._seen = []

    def _monitor(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = connect_checker(self.url, 5.0, 1.0)
        return self._conn

    def _loop(self) -> None:
        from psycopg.pq import TransactionStatus

        while not self._stop.wait(self.interval):
            with self._lock:
                busy = [
                    c.info.backend_pid
                    for c in self._watched
                    if not c.closed and c.info.transaction_status == TransactionStatus.ACTIVE
                ]
                for pid in busy:
                    try:
                        rows = self._monitor().execute(BLOCKERS, {"me": pid}).fetchall()
                    except Exception:  # a sample is a nicety; never let it break a check
                        self._conn = None
                        continue
                    if rows:
                        self._seen = _sessions(rows)

    def blockers(self, ours: list[int]) -> list[Session]:
        """The sessions seen blocking a checker statement, else the likely suspects."""
        with self._lock:
            if self._seen:
                return list(self._seen)
            try:
                rows = self._monitor().execute(SUSPECTS, {"ours": ours}).fetchall()
            except Exception:
                self._conn = None
                return []
            return _sessions(rows)

    def close(self) -> None:
        """Stop sampling and close the watcher's connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._watched = []


def blocked(sessions: list[Session], lock_timeout: float, doing: str = "") -> Blocked:
    """The Fail for a checker statement that gave up waiting for a lock."""
    waiting_for = next((s.relations for s in sessions if s.relations), "")
    what = f" on {waiting_for}" if waiting_for else ""
    doing = f" ({doing})" if doing else ""
    head = f"This check waited more than {lock_timeout:g} s for a lock{what}{doing} and gave up:"
    if not sessions:
        return Blocked(
            f"{head} another session holds it, and was gone before the checker could name "
            "it. If you have a transaction open in `sdtutor lab shell` (or in your own "
            "client), finish it with COMMIT or ROLLBACK, then check again."
        )
    first = sessions[0]
    if len(sessions) == 1:
        told = f"{head} {first.who()} holds it. It {first.doing()}."
    else:
        told = f"{head} other sessions hold it. " + " ".join(
            f"{s.who().capitalize()} {s.doing()}." for s in sessions
        )
    if all(s.application == APPLICATION_NAME for s in sessions):
        advice = (
            "Another `sdtutor lab check` is running on this lab: let it finish, then check again."
        )
    elif any(s.state.startswith("idle in transaction") for s in sessions):
        advice = (
            "That transaction was left open: go back to the shell where you started it and "
            "type COMMIT (or ROLLBACK)."
        )
    else:
        advice = "Let it finish, or end its transaction with COMMIT or ROLLBACK where it runs."
    message = (
        f"{told} {advice} If you cannot find it, end it from any SQL shell: "
        f"SELECT pg_terminate_backend({first.pid});"
    )
    table = Evidence(
        "sessions holding the lock",
        "table",
        (
            ("pid", "state", "since", "user", "application", "client", "statement"),
            [
                (
                    s.pid,
                    s.state,
                    f"{s.since.astimezone():%H:%M:%S}" if s.since else "",
                    s.user,
                    s.application,
                    s.client,
                    " ".join(s.query.split())[:200],
                )
                for s in sessions
            ],
        ),
    )
    return Blocked(message, table)


__all__ = ["APPLICATION_NAME", "LockWatch", "Session", "blocked", "connect_checker"]
