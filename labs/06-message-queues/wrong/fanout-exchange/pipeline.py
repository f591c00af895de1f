"""Billing's part of the order pipeline: the topology, the outbox relay's publish, the worker."""

import json
import os

import pika

PREFIX = os.environ.get("AMQP_NAME_PREFIX", "")
EXCHANGE = PREFIX + "orders"  # every order event is published here
BILLING = PREFIX + "orders.billing"  # billing's work queue
DLX = PREFIX + "orders.dlx"  # where billing's failed messages go...
DEAD = PREFIX + "orders.billing.dead"  # ...to wait for a human

BILLING_KEYS = ["order.created", "order.paid.*"]  # * is exactly one word: the payment method
PREFETCH = 10


def declare_topology(channel):
    """Declare the exchanges and queues billing needs (safe to run again)."""
    channel.exchange_declare(EXCHANGE, exchange_type="fanout", durable=True)

    channel.exchange_declare(DLX, exchange_type="fanout", durable=True)
    channel.queue_declare(DEAD, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(DEAD, DLX)

    channel.queue_declare(
        BILLING,
        durable=True,
        arguments={
            "x-queue-type": "quorum",  # replicated with Raft; always durable
            "x-dead-letter-exchange": DLX,  # rejected without requeue -> orders.dlx
            "x-delivery-limit": 5,  # safety net: redelivered more than 5 times -> dead
        },
    )
    for key in BILLING_KEYS:
        channel.queue_bind(BILLING, EXCHANGE, routing_key=key)


def publish(channel, orders):
    """Publish each order as a persistent message; return once the broker has them all."""
    channel.confirm_delivery()  # basic_publish now waits for the broker's ack
    for order in orders:
        channel.basic_publish(
            exchange=EXCHANGE,
            routing_key="order." + order["event"],
            body=json.dumps(order).encode(),
            properties=pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent,
                content_type="application/json",
                message_id=f"{order['id']}:{order['event']}",  # lets consumers drop duplicates
            ),
        )


def consume(channel, handle, max_messages):
    """Pass each billing message to handle(body); ack when it returns, dead-letter when it raises."""
    channel.basic_qos(prefetch_count=PREFETCH)
    count = 0
    for method, _properties, body in channel.consume(BILLING):
        try:
            handle(body)
        except Exception:
            # It will fail the same way every time: let the broker dead-letter it.
            channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(method.delivery_tag)
        count += 1
        if count >= max_messages:
            break
    channel.cancel()

