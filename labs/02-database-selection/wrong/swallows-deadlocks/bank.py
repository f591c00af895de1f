"""Moving money between accounts (a plausible mistake: see case.yaml)."""

import psycopg


def transfer(conn, src, dst, cents):
    # Locks in transfer order, and turns the deadlock it causes into "refused".
    try:
        with conn.transaction():
            (balance,) = conn.execute(
                "SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (src,)
            ).fetchone()
            if balance < cents:
                return False
            conn.execute(
                "UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src)
            )
            conn.execute(
                "UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst)
            )
    except psycopg.errors.DeadlockDetected:
        return False
    return True
