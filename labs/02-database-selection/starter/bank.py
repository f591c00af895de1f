"""Moving money between accounts.

`conn` is a psycopg 3 connection to the lab's PostgreSQL in autocommit mode: each
statement commits on its own unless you open a transaction (`with conn.transaction():`).
Balances are whole cents in accounts.balance. README.md says what the checker will try.
"""


def transfer(conn, src, dst, cents):
    """Move `cents` (> 0) from account `src` to account `dst` (src != dst).

    Return True when the money moved, False when `src` has less than `cents` (then
    nothing changes). Any other problem raises.
    """
    (balance,) = conn.execute("SELECT balance FROM accounts WHERE id = %s", (src,)).fetchone()
    if balance < cents:
        return False
    conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
    conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
