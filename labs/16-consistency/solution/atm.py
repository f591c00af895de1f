"""Task 1: the ATM's withdrawal, run by twenty ATMs at once.

The check and the write are one statement: PostgreSQL takes the row lock, re-reads the
balance under it and subtracts, so two ATMs can never both spend the same money.
"""


def withdraw(conn, account_id, amount):
    """Take `amount` from the account if it holds that much; True if paid, False if not."""
    cur = conn.execute(
        "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s",
        (amount, account_id, amount),
    )
    return cur.rowcount == 1
