"""A router for the replication lab: reads everything from the primary."""

import time

MAX_WAIT = 0.2
POLL = 0.02


class Router:
    def __init__(self, primary, replica):
        self.primary = primary
        self.replica = replica

    def write(self, session, sql, params=()):
        cur = self.primary.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def read(self, session, sql, params=()):
        return self.primary.execute(sql, params).fetchall()
