"""WRONG: the decision is logged before either bank has voted.

Two-phase commit with this code as the coordinator:

  phase 1  each bank does its part in a transaction and PREPAREs it: the change is
           durable and its row locks held, but not committed. A bank that cannot do
           its part votes no (its UPDATE changes nothing, or PREPARE raises).
  decide   both voted yes: one row in bank A's `decisions` table, committed on its own.
  phase 2  COMMIT PREPARED on both banks.

A crash before the decision leaves prepared transactions that recover.py rolls back; a
crash after it leaves some that recover.py commits. Either way both banks agree.
"""

import psycopg
from psycopg import sql

BANKS = ("bank_a", "bank_b")


def gid(transfer_id, bank):
    """The global transaction id of one bank's part of a transfer: 't-42@bank_b'."""
    return f"{transfer_id}@{bank}"


def transfer_of(gid_text):
    """The transfer id and bank a gid names: transfer_of('t-42@bank_b') -> ('t-42', 'bank_b')."""
    transfer_id, _, bank = gid_text.rpartition("@")
    return transfer_id, bank


def _finish(conn, verb, gid_text):
    conn.execute(sql.SQL(verb + " PREPARED {}").format(sql.Literal(gid_text)))


def _prepare(conn, bank, transfer_id, statement, params):
    """Do one bank's part and prepare it; False (nothing left open) if the bank says no."""
    conn.execute("BEGIN")
    try:
        if conn.execute(statement, params).rowcount != 1:
            conn.execute("ROLLBACK")
            return False
        conn.execute(
            sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(gid(transfer_id, bank)))
        )
    except psycopg.Error:
        # A refused statement aborts the transaction; a refused PREPARE rolls it back.
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        return False
    return True


def transfer_across(bank_a, bank_b, transfer_id, from_id, to_id, amount):
    """Logs the decision first, then runs the two phases."""
    bank_a.execute("INSERT INTO decisions (transfer_id) VALUES (%s)", (transfer_id,))
    if not _prepare(
        bank_a,
        "bank_a",
        transfer_id,
        "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s",
        (amount, from_id, amount),
    ):
        return False
    if not _prepare(
        bank_b,
        "bank_b",
        transfer_id,
        "UPDATE accounts SET balance = balance + %s WHERE id = %s",
        (amount, to_id),
    ):
        _finish(bank_a, "ROLLBACK", gid(transfer_id, "bank_a"))
        return False
    _finish(bank_a, "COMMIT", gid(transfer_id, "bank_a"))
    _finish(bank_b, "COMMIT", gid(transfer_id, "bank_b"))
    return True
