RECENT = """
SELECT user_id, id, status, total, created_at FROM (
    SELECT o.*, row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC) AS rn
    FROM orders o WHERE user_id = ANY(%(ids)s)
) ranked
WHERE rn <= %(n)s
ORDER BY user_id, created_at DESC
"""


def recent_orders_for(conn, user_ids, per_user=5):
    result = {user_id: [] for user_id in user_ids}
    rows = conn.execute(RECENT, {"ids": list(user_ids), "n": per_user}).fetchall()
    for user_id, *order in rows:
        result[user_id].append(tuple(order))
    return result
