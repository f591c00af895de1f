"""Billing's part of the order pipeline: the topology, the outbox relay's publish, the worker.

It runs, and it loses orders. See README.md for what billing needs.
"""

import json
import os

import pika

PREFIX = os.environ.get("AMQP_NAME_PREFIX", "")
EXCHANGE = PREFIX + "orders"  # every order event is published here
BILLING = PREFIX + "orders.billing"  # billing's work queue
DLX = PREFIX + "orders.dlx"  # where billing's failed messages go...
DEAD = PREFIX + "orders.billing.dead"  # ...to wait for a human


def declare_topology(channel):
    """Declare the exchanges and queues billing needs (safe to run again)."""
    channel.exchange_declare(EXCHANGE, exchange_type="fanout")
    channel.queue_declare(BILLING)
    channel.queue_bind(BILLING, EXCHANGE)
    # TODO: the dead-letter exchange DLX and the queue DEAD, and point BILLING at DLX.


def publish(channel, orders):
    """Publish each order (a dict) to EXCHANGE with the routing key order.<event>."""
    for order in orders:
        channel.basic_publish(EXCHANGE, "order." + order["event"], json.dumps(order))


def consume(channel, handle, max_messages):
    """Pass each billing message's body to handle(body); return after max_messages messages."""
    count = 0

    def on_message(ch, method, properties, body):
        nonlocal count
        handle(body)
        count += 1
        if count >= max_messages:
            ch.stop_consuming()

    channel.basic_consume(BILLING, on_message, auto_ack=True)
    channel.start_consuming()


if __name__ == "__main__":
    # Try it by hand: AMQP_URL and AMQP_NAME_PREFIX from `sdtutor lab info message-queues`.
    connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
    channel = connection.channel()
    declare_topology(channel)
    publish(
        channel,
        [
            {"id": 1, "event": "created", "total": "25.00"},
            {"id": 1, "event": "viewed"},
            {"id": 1, "event": "paid.card", "total": "25.00"},
            {"id": 2, "event": "created", "total": "a lot"},
        ],
    )

    def show(body):
        order = json.loads(body)
        print("billing got", order)
        float(order["total"])  # raises for order 2: a poison message

    consume(channel, show, 3)
    connection.close()
