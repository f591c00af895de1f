"""The "recent orders" panel of the admin dashboard."""


def recent_orders_for(conn, user_ids, per_user=5):
    """Return {user_id: [(id, status, total, created_at), ...]} for every user asked for.

    Each list holds that user's `per_user` newest orders, newest first (ties broken by
    the higher id first); a user with no orders gets an empty list.
    `conn` is a psycopg 3 connection to the lab's database.
    """
    result = {}
    for user_id in user_ids:
        rows = conn.execute(
            "SELECT id, status, total, created_at FROM orders "
            "WHERE user_id = %s ORDER BY created_at DESC, id DESC LIMIT %s",
            (user_id, per_user),
        ).fetchall()
        result[user_id] = rows
    return result
