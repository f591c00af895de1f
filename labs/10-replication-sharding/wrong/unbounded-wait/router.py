"""A router for the replication lab: waits for the replica with no bound."""

import time

MAX_WAIT = 0.2
POLL = 0.02


class Router:
    def __init__(self, primary, replica):
        self.primary = primary
        self.replica = replica
        self.pending = {}

    def write(self, session, sql, params=()):
        cur = self.primary.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        (lsn,) = self.primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        self.pending[session] = lsn
        return rows

    def read(self, session, sql, params=()):
        lsn = self.pending.pop(session, None)
        if lsn is not None:
            while not self.replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
            ).fetchone()[0]:
                time.sleep(POLL)
        return self.replica.execute(sql, params).fetchall()
