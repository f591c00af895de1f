"""A router for the replication lab: waits for the position the replica has received."""

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
                "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,)
            ).fetchone()
            if done or time.monotonic() >= deadline:
                return bool(done)
            time.sleep(POLL)
