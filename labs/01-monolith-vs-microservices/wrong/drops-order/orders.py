"""Placing an order: the orders module saves it, the inventory module holds the stock.

Inventory used to be a function call inside the monolith. It is now a module of its
own behind HTTP (README.md describes its API), so this call can be slow, fail, or
never come back: it gets a deadline, a few bounded retries, and a fallback.
"""

import http.client
import json
import random
import time
import urllib.error
import urllib.request

DEADLINE = 1.2  # seconds for all attempts together (checkout allows place_order 1.5 s)
PER_TRY = 0.6  # one attempt's timeout: a healthy inventory answers within 0.3 s
ATTEMPTS = 3  # 1 try and 2 retries
BACKOFF = 0.05  # first pause between attempts; it doubles, with jitter


class NoAnswer(Exception):
    """Inventory gave no answer in time: whether the stock is held is unknown."""


def place_order(conn, inventory_url, order):
    """Save `order` ({"customer": ..., "lines": [{"sku": ..., "qty": ...}]}), reserve
    its stock, and return {"order_id": <id>, "status": "confirmed" | "rejected" |
    "pending"}."""
    # All or nothing, as the monolith's one transaction did it.
    try:
        with conn.transaction():
            order_id = conn.execute(
                "INSERT INTO orders (customer, status) VALUES (%s, 'pending') RETURNING id",
                (order["customer"],),
            ).fetchone()[0]
            for line in order["lines"]:
                conn.execute(
                    "INSERT INTO order_lines (order_id, sku, qty) VALUES (%s, %s, %s)",
                    (order_id, line["sku"], line["qty"]),
                )
            reserved = _reserve(inventory_url, order_id, order["lines"])
            status = "confirmed" if reserved else "rejected"
            conn.execute("UPDATE orders SET status = %s WHERE id = %s", (status, order_id))
    except NoAnswer:
        # Rolled back: the customer can simply try again later.
        return {"order_id": None, "status": "pending"}
    return {"order_id": order_id, "status": status}


def _reserve(inventory_url, order_id, lines):
    """True: reserved; False: sold out. NoAnswer when inventory does not say."""
    body = json.dumps({"order_id": order_id, "lines": lines}).encode()
    headers = {
        "Content-Type": "application/json",
        # The same key on every attempt: one that timed out but was done is not redone.
        "Idempotency-Key": f"order-{order_id}",
    }
    deadline = time.monotonic() + DEADLINE
    for attempt in range(ATTEMPTS):
        left = deadline - time.monotonic()
        if left < 0.05:
            break
        request = urllib.request.Request(
            f"{inventory_url}/reservations", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=min(PER_TRY, left)) as response:
                response.read()
                return True
        except urllib.error.HTTPError as error:
            if error.code == 409:
                return False  # an answer: asking again gets the same no
            if error.code < 500:
                raise NoAnswer(f"inventory refused the request: {error.code}") from error
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            pass  # timed out, refused, dropped: worth another try
        pause = BACKOFF * 2**attempt * random.uniform(0.5, 1.5)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
    raise NoAnswer("inventory did not answer in time")
