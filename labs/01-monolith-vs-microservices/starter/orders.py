"""Placing an order: the orders module saves it, the inventory module holds the stock.

Inventory used to be a function call inside the monolith. It is now a module of its
own behind HTTP (README.md describes its API), so this call can be slow, fail, or
never come back.
"""

import json
import urllib.error
import urllib.request


def place_order(conn, inventory_url, order):
    """Save `order` ({"customer": ..., "lines": [{"sku": ..., "qty": ...}]}), reserve
    its stock, and return {"order_id": <id>, "status": "confirmed" | "rejected" |
    "pending"}."""
    order_id = conn.execute(
        "INSERT INTO orders (customer, status) VALUES (%s, 'new') RETURNING id",
        (order["customer"],),
    ).fetchone()[0]
    for line in order["lines"]:
        conn.execute(
            "INSERT INTO order_lines (order_id, sku, qty) VALUES (%s, %s, %s)",
            (order_id, line["sku"], line["qty"]),
        )

    request = urllib.request.Request(
        f"{inventory_url}/reservations",
        data=json.dumps({"order_id": order_id, "lines": order["lines"]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request):
            status = "confirmed"
    except urllib.error.HTTPError as error:
        if error.code != 409:
            raise
        status = "rejected"  # inventory said: out of stock

    conn.execute("UPDATE orders SET status = %s WHERE id = %s", (status, order_id))
    return {"order_id": order_id, "status": status}
