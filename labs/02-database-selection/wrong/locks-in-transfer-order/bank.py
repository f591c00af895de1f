"""Moving money between accounts (a plausible mistake: see case.yaml)."""


def transfer(conn, src, dst, cents):
    # Locks the source first, then the destination: two transfers in opposite
    # directions each hold one row and wait for the other's.
    with conn.transaction():
        (balance,) = conn.execute(
            "SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (src,)
        ).fetchone()
        if balance < cents:
            return False
        conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
