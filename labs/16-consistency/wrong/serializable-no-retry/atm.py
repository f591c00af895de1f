"""Serializable isolation, but a serialization failure is never retried."""


def withdraw(conn, account_id, amount):
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        balance = conn.execute(
            "SELECT balance FROM accounts WHERE id = %s", (account_id,)
        ).fetchone()[0]
        if balance < amount:
            return False
        conn.execute(
            "UPDATE accounts SET balance = %s WHERE id = %s", (balance - amount, account_id)
        )
    return True
