"""The "recent orders" panel of the admin dashboard."""

RECENT = """
SELECT u.user_id, o.id, o.status, o.total, o.created_at
FROM unnest(%(user_ids)s::bigint[]) AS u(user_id)
CROSS JOIN LATERAL (
    SELECT id, status, total, created_at
    FROM orders
    WHERE orders.user_id = u.user_id
    ORDER BY created_at DESC, id DESC
    LIMIT %(per_user)s
) AS o
ORDER BY u.user_id, o.created_at DESC, o.id DESC
"""


def recent_orders_for(conn, user_ids, per_user=5):
    """Return {user_id: [(id, status, total, created_at), ...]} for every user asked for.

    One statement for all users: LATERAL runs the per-user LIMIT inside the database,
    so a heavy user costs `per_user` rows, not all of their orders.
    """
    result = {user_id: [] for user_id in user_ids}
    rows = conn.execute(RECENT, {"user_ids": list(user_ids), "per_user": per_user}).fetchall()
    for user_id, *order in rows:
        result[user_id].append(tuple(order))
    return result
