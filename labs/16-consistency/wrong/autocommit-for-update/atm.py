"""Locks the row with FOR UPDATE, but in autocommit mode: the lock ends with the SELECT."""


def withdraw(conn, account_id, amount):
    balance = conn.execute(
        "SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (account_id,)
    ).fetchone()[0]
    if balance < amount:
        return False
    conn.execute(
        "UPDATE accounts SET balance = %s WHERE id = %s", (balance - amount, account_id)
    )
    return True
