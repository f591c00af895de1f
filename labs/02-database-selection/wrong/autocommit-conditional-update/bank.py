"""Moving money between accounts (a plausible mistake: see case.yaml)."""


def transfer(conn, src, dst, cents):
    # The check and the debit are one statement, so no overdraft; but each UPDATE
    # commits on its own (autocommit).
    debit = conn.execute(
        "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s",
        (cents, src, cents),
    )
    if debit.rowcount == 0:
        return False
    conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
