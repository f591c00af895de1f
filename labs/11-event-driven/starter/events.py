"""An account as a stream of events, and a read model (CQRS) projected from them.

`db` is a psycopg 3 connection to the lab's PostgreSQL with autocommit on: every
statement commits on its own unless you open `with db.transaction():`. Each call runs in
a fresh process, as each request may land on another app server: anything your code must
remember between calls lives in the database.

README.md says what to change and what the checker will try.
"""

SIGN = {"opened": 0, "deposited": 1, "withdrawn": -1}


class Conflict(Exception):
    """Another writer appended to this stream first: reload it, decide again, retry."""


def load(db, account_id):
    """The account's events, oldest first: [(version, kind, amount), ...]."""
    return db.execute(
        "SELECT version, kind, amount FROM account_events "
        "WHERE account_id = %s ORDER BY version",
        (account_id,),
    ).fetchall()


def fold(events):
    """(balance, version) of a stream: the state is computed, never stored."""
    balance, version = 0, 0
    for version, kind, amount in events:
        balance += SIGN[kind] * amount
    return balance, version


def append(db, account_id, expected_version, kind, amount=0):
    """Append one event right after `expected_version`; return its version.

    `expected_version` is the version the caller loaded and decided on (0 for an account
    with no events yet). If the stream has moved on since, raise Conflict and append
    nothing.
    """
    # Wrong on purpose: appends after whatever is there now, so a decision taken on
    # version 3 lands as version 5 when someone else wrote version 4 meanwhile.
    return db.execute(
        "INSERT INTO account_events (account_id, version, kind, amount) "
        "SELECT %s, coalesce(max(version), 0) + 1, %s, %s "
        "FROM account_events WHERE account_id = %s RETURNING version",
        (account_id, kind, amount, account_id),
    ).fetchone()[0]


def catch_up(db):
    """Apply to account_balances every event it has not applied yet; return how many."""
    # Wrong on purpose: applies the whole log every time it runs.
    events = db.execute(
        "SELECT account_id, version, kind, amount FROM account_events ORDER BY position"
    ).fetchall()
    with db.transaction():
        for account_id, version, kind, amount in events:
            db.execute(
                "INSERT INTO account_balances (account_id, balance, version) "
                "VALUES (%s, %s, %s) ON CONFLICT (account_id) DO UPDATE "
                "SET balance = account_balances.balance + EXCLUDED.balance, "
                "version = EXCLUDED.version",
                (account_id, SIGN[kind] * amount, version),
            )
    return len(events)


def rebuild(db):
    """Throw the read model away and replay the whole log into it; return how many."""
    db.execute("DELETE FROM account_balances")
    return catch_up(db)
