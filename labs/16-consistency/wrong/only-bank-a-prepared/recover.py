"""WRONG: starts from bank A's prepared transactions and finishes both parts of each."""

import psycopg
from psycopg import sql

from transfer import gid, transfer_of


def recover(bank_a, bank_b):
    decided = {row[0] for row in bank_a.execute("SELECT transfer_id FROM decisions")}
    found = bank_a.execute(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
    ).fetchall()
    for (gid_text,) in found:
        transfer_id, _ = transfer_of(gid_text)
        verb = "COMMIT" if transfer_id in decided else "ROLLBACK"
        for conn, bank in ((bank_a, "bank_a"), (bank_b, "bank_b")):
            try:
                conn.execute(
                    sql.SQL(verb + " PREPARED {}").format(sql.Literal(gid(transfer_id, bank)))
                )
            except psycopg.errors.UndefinedObject:
                pass  # that bank had not prepared it
