"""Task 3: after a crash, finish every transfer the coordinator left prepared.

The decision log on bank A is the only truth: a transfer with a row there committed, so
every part of it still prepared is committed; any other prepared part is rolled back
(presumed abort: the coordinator never decided, so nothing of it committed anywhere).
"""

from psycopg import sql

from transfer import transfer_of


def recover(bank_a, bank_b):
    """Commit or roll back every transaction a crashed coordinator left prepared.

    Returns what it did, e.g. {"committed": ["t-1@bank_b"], "rolled_back": [...]}.
    """
    decided = {row[0] for row in bank_a.execute("SELECT transfer_id FROM decisions")}
    done = {"committed": [], "rolled_back": []}
    for conn in (bank_a, bank_b):
        # The view lists the whole server: only this database's transactions are ours.
        found = conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall()
        for (gid_text,) in found:
            transfer_id, _ = transfer_of(gid_text)
            verb = "COMMIT" if transfer_id in decided else "ROLLBACK"
            conn.execute(sql.SQL(verb + " PREPARED {}").format(sql.Literal(gid_text)))
            done["committed" if verb == "COMMIT" else "rolled_back"].append(gid_text)
    return done
