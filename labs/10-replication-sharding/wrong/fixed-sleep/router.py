"""A router for the replication lab: sleeps after each write, then reads the replica."""

import time

MAX_WAIT = 0.2
POLL = 0.02


class Router:
    def __init__(self, primary, replica):
        self.primary = primary
        self.replica = replica

    def write(self, session, sql, params=()):
        cur = self.primary.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        time.sleep(1.2)  # the replica is about a second behind: give it time
        return rows

    def read(self, session, sql, params=()):
        return self.replica.execute(sql, params).fetchall()
