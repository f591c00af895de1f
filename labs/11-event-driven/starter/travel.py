"""The three travel services the saga calls. You do not need to change this file.

Each function stands for a call to another service with its own database: it commits
on its own (a local transaction), and it cannot join a transaction of yours. A step
that fails raises StepFailed and leaves nothing behind. Every call is written to the
saga_log table, which is how `sdtutor lab check` sees what your saga did and in what
order. The checker runs your saga with its own copy of this file.

    step            its compensation
    reserve_flight  cancel_flight
    reserve_hotel   cancel_hotel
    charge_card     refund_card
"""

import psycopg


class StepFailed(Exception):
    """The service said no (a full flight, a full hotel, a declined card)."""


def _log(db, trip_id, action, outcome):
    db.execute(
        "INSERT INTO saga_log (trip_id, action, outcome) VALUES (%s, %s, %s)",
        (trip_id, action, outcome),
    )


def _on_its_own(db, action):
    """A service call cannot be part of the caller's transaction."""
    if db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError(
            f"{action} was called inside an open transaction. Each step is a call to "
            f"another service: it commits on its own, and no transaction of yours can "
            f"undo it. Call the steps outside any transaction; a saga undoes a step "
            f"with its compensation instead."
        )


def _do(db, trip_id, action, service, change, status):
    """Take one unit (a seat, a room, the price) and record the reservation, atomically."""
    _on_its_own(db, action)
    try:
        with db.transaction():
            db.execute(change, (trip_id,))
            db.execute(
                "INSERT INTO reservations (trip_id, service, status) VALUES (%s, %s, %s)",
                (trip_id, service, status),
            )
            _log(db, trip_id, action, "done")
    except psycopg.errors.CheckViolation as exc:
        _log(db, trip_id, action, "failed")
        raise StepFailed(f"{action} for trip {trip_id}: {exc.diag.constraint_name}") from None
    except psycopg.errors.UniqueViolation:
        _log(db, trip_id, action, "failed")
        raise StepFailed(f"{action} for trip {trip_id}: already done once") from None


def _undo(db, trip_id, action, service, change, was, now):
    """Give the unit back if this trip holds one; record the call either way."""
    _on_its_own(db, action)
    with db.transaction():
        undone = db.execute(
            "UPDATE reservations SET status = %s "
            "WHERE trip_id = %s AND service = %s AND status = %s RETURNING trip_id",
            (now, trip_id, service, was),
        ).fetchone()
        if undone:
            db.execute(change, (trip_id,))
        _log(db, trip_id, action, "done" if undone else "nothing to undo")


def reserve_flight(db, trip_id):
    """Take one seat on the trip's flight."""
    _do(db, trip_id, "reserve_flight", "flight",
        "UPDATE flights SET seats_left = seats_left - 1 "
        "WHERE code = (SELECT flight FROM trips WHERE id = %s)", "held")


def cancel_flight(db, trip_id):
    """Give the trip's seat back (compensates reserve_flight)."""
    _undo(db, trip_id, "cancel_flight", "flight",
          "UPDATE flights SET seats_left = seats_left + 1 "
          "WHERE code = (SELECT flight FROM trips WHERE id = %s)", "held", "cancelled")


def reserve_hotel(db, trip_id):
    """Take one room at the trip's hotel."""
    _do(db, trip_id, "reserve_hotel", "hotel",
        "UPDATE hotels SET rooms_left = rooms_left - 1 "
        "WHERE name = (SELECT hotel FROM trips WHERE id = %s)", "held")


def cancel_hotel(db, trip_id):
    """Give the trip's room back (compensates reserve_hotel)."""
    _undo(db, trip_id, "cancel_hotel", "hotel",
          "UPDATE hotels SET rooms_left = rooms_left + 1 "
          "WHERE name = (SELECT hotel FROM trips WHERE id = %s)", "held", "cancelled")


def charge_card(db, trip_id):
    """Take the trip's price from its card."""
    _do(db, trip_id, "charge_card", "payment",
        "UPDATE cards SET balance = balance - t.price FROM trips t "
        "WHERE t.id = %s AND cards.number = t.card", "charged")


def refund_card(db, trip_id):
    """Give the price back to the card (compensates charge_card)."""
    _undo(db, trip_id, "refund_card", "payment",
          "UPDATE cards SET balance = balance + t.price FROM trips t "
          "WHERE t.id = %s AND cards.number = t.card", "charged", "refunded")
