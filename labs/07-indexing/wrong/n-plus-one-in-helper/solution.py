"""The "recent orders" panel of the admin dashboard."""

RECENT = (
    "SELECT id, status, total, created_at FROM orders "
    "WHERE user_id = %s ORDER BY created_at DESC, id DESC LIMIT %s"
)


def _orders_for_user(conn, user_id, per_user):
    return conn.execute(RECENT, (user_id, per_user)).fetchall()


def recent_orders_for(conn, user_ids, per_user=5):
    """Tidier, but every user is still a round trip of its own."""
    return {user_id: _orders_for_user(conn, user_id, per_user) for user_id in user_ids}
