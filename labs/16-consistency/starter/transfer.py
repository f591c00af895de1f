"""Task 2: move money from an account at bank A to an account at bank B.

`bank_a` and `bank_b` are psycopg 3 connections in autocommit mode, one to each bank's
database, made for you and passed in. The banks are separate databases (in production,
separate servers run by separate teams): no single transaction can span them.

This version debits bank A, which commits at once, then credits bank B. When bank B
says no, the money has already left bank A and lands nowhere.

The names below are the lab's protocol; recover.py and the checker rely on them:
  - each bank's part of a transfer is prepared under gid(transfer_id, bank);
  - the decision to commit is one row in bank A's `decisions` table (transfer_id);
    no row means the transfer is aborted (presumed abort).
"""

BANKS = ("bank_a", "bank_b")


def gid(transfer_id, bank):
    """The global transaction id of one bank's part of a transfer: 't-42@bank_b'."""
    return f"{transfer_id}@{bank}"


def transfer_of(gid_text):
    """The transfer id and bank a gid names: transfer_of('t-42@bank_b') -> ('t-42', 'bank_b')."""
    transfer_id, _, bank = gid_text.rpartition("@")
    return transfer_id, bank


def transfer_across(bank_a, bank_b, transfer_id, from_id, to_id, amount):
    """Move `amount` from account `from_id` at bank A to account `to_id` at bank B.

    Returns True when the money moved (both banks changed), False when either bank
    refused (neither changed). `transfer_id` is unique to this transfer.
    """
    moved = bank_a.execute(
        "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s",
        (amount, from_id, amount),
    ).rowcount
    if moved != 1:
        return False
    bank_b.execute(
        "UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id)
    )
    return True
