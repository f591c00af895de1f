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
    with conn.transaction():
        # Lock both rows in one order (by id) for every transfer, so two transfers
        # between the same accounts, in opposite directions, never wait for each other
        # in a circle (a deadlock).
        rows = conn.execute(
            "SELECT id, balance FROM accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            ([src, dst],),
        ).fetchall()
        balances = dict(rows)
        if len(balances) != 2:
            raise ValueError(f"no such account: {src if src not in balances else dst}")
        if balances[src] < cents:
            return False
        conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
