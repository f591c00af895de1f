"""The "recent orders" panel of the admin dashboard."""

RECENT = """
SELECT user_id, id, status, total, created_at FROM (
    SELECT o.*, row_number() OVER (
        PARTITION BY user_id ORDER BY created_at DESC, id DESC) AS rn
    FROM orders o WHERE user_id = ANY(%(user_ids)s)
) ranked
WHERE rn <= %(per_user)s
ORDER BY user_id, created_at DESC, id DESC
"""


def recent_orders_for(conn, user_ids, per_user=5):
    """One statement, but only users that have orders get a key."""
    result = {}
    for user_id, *order in conn.execute(
        RECENT, {"user_ids": list(user_ids), "per_user": per_user}
    ).fetchall():
        result.setdefault(user_id, []).append(tuple(order))
    return result
