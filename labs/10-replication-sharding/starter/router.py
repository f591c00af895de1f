"""Task 1: send each statement to the right server, and keep every user's own writes visible.

`primary` and `replica` are psycopg 3 connections in autocommit mode (each statement
commits on its own), made for you: the primary takes writes; the replica streams the
primary's WAL and replays each commit about a second late.

A *session* is one user of the app, named by a string ("ana"). The app calls
`write(session, sql, params)` for INSERT, UPDATE and DELETE, and `read(session, sql,
params)` for SELECT, for every user through the same Router.

This version sends every read to the replica: the replica takes the load off the
primary, but a user who has just written reads the replica before it has replayed the
write, and the write seems lost. README.md shows it happen.
"""

MAX_WAIT = 0.5
"""Seconds a read may wait for the replica to catch up before it gives up on it."""


class Router:
    """Routes statements between the primary and the replica for every session."""

    def __init__(self, primary, replica):
        self.primary = primary
        self.replica = replica

    def write(self, session, sql, params=()):
        """Run one write for `session` on the primary; return its rows ([] if none)."""
        cur = self.primary.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def read(self, session, sql, params=()):
        """Run one read for `session`; return its rows."""
        return self.replica.execute(sql, params).fetchall()
