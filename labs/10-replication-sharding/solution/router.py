"""Task 1: send each statement to the right server, and keep every user's own writes visible.

`primary` and `replica` are psycopg 3 connections in autocommit mode (each statement
commits on its own), made for you: the primary takes writes; the replica streams the
primary's WAL and replays each commit about a second late.

A *session* is one user of the app, named by a string ("ana"). The app calls
`write(session, sql, params)` for INSERT, UPDATE and DELETE, and `read(session, sql,
params)` for SELECT, for every user through the same Router.

After each write, the session remembers the primary's WAL position: its commit lies
before it. A read of that session waits (at most MAX_WAIT) until the replica has
*replayed* that far, and reads the primary when it has not. Sessions with nothing
pending read the replica at once.
"""

import time

MAX_WAIT = 0.2
"""Seconds a read may wait for the replica to catch up before it gives up on it."""
POLL = 0.02


class Router:
    """Routes statements between the primary and the replica for every session."""

    def __init__(self, primary, replica):
        self.primary = primary
        self.replica = replica
        self.pending = {}  # session -> WAL position of its last write, until replayed

    def write(self, session, sql, params=()):
        """Run one write for `session` on the primary; return its rows ([] if none)."""
        cur = self.primary.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        # Read after the commit: the position is past the commit record.
        (lsn,) = self.primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        self.pending[session] = lsn
        return rows

    def read(self, session, sql, params=()):
        """Run one read for `session`; return its rows."""
        lsn = self.pending.get(session)
        if lsn is not None:
            if not self._replayed(lsn):
                return self.primary.execute(sql, params).fetchall()
            del self.pending[session]  # the replica has it: no need to ask again
        return self.replica.execute(sql, params).fetchall()

    def _replayed(self, lsn):
        """Whether the replica has replayed up to `lsn`, waiting at most MAX_WAIT."""
        deadline = time.monotonic() + MAX_WAIT
        while True:
            (done,) = self.replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
            ).fetchone()
            if done or time.monotonic() >= deadline:
                return bool(done)
            time.sleep(POLL)
