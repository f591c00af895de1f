"""Reads to decide, then subtracts atomically: the subtraction is safe, the decision is not."""


def withdraw(conn, account_id, amount):
    balance = conn.execute(
        "SELECT balance FROM accounts WHERE id = %s", (account_id,)
    ).fetchone()[0]
    if balance < amount:
        return False
    conn.execute(
        "UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, account_id)
    )
    return True
