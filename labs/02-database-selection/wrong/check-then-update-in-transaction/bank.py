"""Moving money between accounts (a plausible mistake: see case.yaml)."""


def transfer(conn, src, dst, cents):
    # One transaction, but the balance is read without a lock: another transfer can
    # take the money between the SELECT and the UPDATE (Read Committed).
    with conn.transaction():
        (balance,) = conn.execute(
            "SELECT balance FROM accounts WHERE id = %s", (src,)
        ).fetchone()
        if balance < cents:
            return False
        conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
