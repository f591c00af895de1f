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
    import psycopg

    version = expected_version + 1
    try:
        db.execute(
            "INSERT INTO account_events (account_id, version, kind, amount) "
            "VALUES (%s, %s, %s, %s)",
            (account_id, version, kind, amount),
        )
    except psycopg.errors.UniqueViolation:
        # Someone else wrote this version first: our decision was taken on old state.
        raise Conflict(
            f"account {account_id} is past version {expected_version}: reload and retry"
        ) from None
    return version


# One statement applies a batch: the signed sum of each account's new events, and the
# last version seen. Per account, the sum of the old balance and the new events' sum is
# the fold of the whole stream.
APPLY = """
INSERT INTO account_balances (account_id, balance, version)
SELECT account_id,
       sum(CASE kind WHEN 'deposited' THEN amount WHEN 'withdrawn' THEN -amount ELSE 0 END),
       max(version)
FROM account_events
WHERE position > %s AND position <= %s
GROUP BY account_id
ON CONFLICT (account_id) DO UPDATE
SET balance = account_balances.balance + EXCLUDED.balance,
    version = EXCLUDED.version
"""


def catch_up(db):
    """Apply to account_balances every event it has not applied yet; return how many."""
    with db.transaction():
        # FOR UPDATE: a second projector waits here instead of applying the same events.
        done = db.execute(
            "SELECT position FROM projection_checkpoint WHERE name = 'account_balances' "
            "FOR UPDATE"
        ).fetchone()[0]
        last, count = db.execute(
            "SELECT coalesce(max(position), %s), count(*) FROM account_events "
            "WHERE position > %s",
            (done, done),
        ).fetchone()
        if count:
            db.execute(APPLY, (done, last))
            db.execute(
                "UPDATE projection_checkpoint SET position = %s WHERE name = 'account_balances'",
                (last,),
            )
    return count


def rebuild(db):
    """Throw the read model away and replay the whole log into it; return how many."""
    with db.transaction():
        # The read model and its checkpoint go together: an empty table with a
        # checkpoint at the end of the log would stay empty for good.
        db.execute(
            "SELECT position FROM projection_checkpoint WHERE name = 'account_balances' "
            "FOR UPDATE"
        )
        db.execute("DELETE FROM account_balances")
        db.execute("UPDATE projection_checkpoint SET position = 0 WHERE name = 'account_balances'")
        return catch_up(db)
