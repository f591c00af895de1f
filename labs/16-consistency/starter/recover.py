"""Task 3: after a crash, finish every transfer the coordinator left prepared.

`bank_a` and `bank_b` are psycopg 3 connections in autocommit mode. A coordinator that
dies between PREPARE TRANSACTION and COMMIT PREPARED leaves prepared transactions
behind: they survive restarts and hold their row locks until someone finishes them.
This runs when the coordinator starts again.

This version rolls back everything it finds. That is right for a transfer nobody decided
to commit, and wrong for one the decision log says committed: half of it may already be
committed on the other bank.
"""

from psycopg import sql


def recover(bank_a, bank_b):
    """Commit or roll back every transaction a crashed coordinator left prepared."""
    for conn in (bank_a, bank_b):
        # The view lists the whole server: only this database's transactions are ours.
        found = conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall()
        for (gid_text,) in found:
            conn.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid_text)))
