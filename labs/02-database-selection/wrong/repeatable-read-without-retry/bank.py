"""Moving money between accounts (a plausible mistake: see case.yaml)."""

import psycopg


def transfer(conn, src, dst, cents):
    # Repeatable Read and locks in id order: no overdraft and no deadlock, but a
    # transaction whose rows another one changed is aborted, and nothing retries it.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    with conn.transaction():
        rows = conn.execute(
            "SELECT id, balance FROM accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            ([src, dst],),
        ).fetchall()
        if dict(rows)[src] < cents:
            return False
        conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
