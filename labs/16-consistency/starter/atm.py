"""Task 1: the ATM's withdrawal, run by twenty ATMs at once.

`conn` is a psycopg 3 connection to bank A, in autocommit mode (each statement commits
on its own unless you open a transaction). It is made for you and passed in.

This version reads the balance, decides in Python, and writes back the number it
computed. Alone it is right. Twenty at once, under PostgreSQL's default isolation (Read
Committed), it pays out money the balance never loses: README.md shows how.
"""


def withdraw(conn, account_id, amount):
    """Take `amount` from the account if it holds that much.

    Returns True when the money was taken (the ATM pays out), False when the balance was
    too low (the ATM refuses). Never lets a balance go below zero.
    """
    balance = conn.execute(
        "SELECT balance FROM accounts WHERE id = %s", (account_id,)
    ).fetchone()[0]
    if balance < amount:
        return False
    conn.execute(
        "UPDATE accounts SET balance = %s WHERE id = %s", (balance - amount, account_id)
    )
    return True
