"""WRONG: commits everything prepared: every vote was yes, so surely it was meant to commit."""

from psycopg import sql


def recover(bank_a, bank_b):
    for conn in (bank_a, bank_b):
        found = conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall()
        for (gid_text,) in found:
            conn.execute(sql.SQL("COMMIT PREPARED {}").format(sql.Literal(gid_text)))
