"""WRONG: rolls back everything prepared, whatever the decision log says."""

from psycopg import sql


def recover(bank_a, bank_b):
    for conn in (bank_a, bank_b):
        found = conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall()
        for (gid_text,) in found:
            conn.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid_text)))
