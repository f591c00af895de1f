"""A small RabbitMQ prompt: exchanges, queues, bindings, and a look at messages.

Names may be typed without the lab's prefix; it is added. `peek` takes messages without
acknowledging them, so they go back to the queue (marked redelivered) when it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdtutor.services.base import Access
from sdtutor.services.prompt import commands

HELP = """Commands (names without the prefix are fine):
  exchanges | queues | bindings      what the lab's vhost holds
  peek QUEUE [N]                     look at up to N messages (they stay in the queue)
  publish EXCHANGE KEY BODY          publish a message ('' is the default exchange)
  purge QUEUE                        delete a queue's messages
  help | quit"""

Listing = Callable[[], dict[str, list[dict[str, Any]]]]


def prompt(access: Access, listing: Listing | None = None, known: list[str] | None = None) -> int:
    """Read commands until quit (line editing and history as in the SQL prompt); returns
    an exit code."""
    import pika.exceptions

    from sdtutor.services.rabbitmq import connect

    conn = connect(access.url)
    where = f" (names start with {access.prefix})" if access.prefix else ""
    print(f"RabbitMQ{where}. {HELP}")
    try:
        for words in commands("amqp> ", history="amqp"):
            command, args = words[0].lower(), words[1:]
            try:
                print(_run(conn, access.prefix, command, args, listing, known or []))
            except pika.exceptions.ChannelClosed as exc:
                print(f"(refused) {exc.reply_text}")
            except (IndexError, ValueError):
                print(HELP)
        return 0
    finally:
        conn.close()


def _name(prefix: str, name: str) -> str:
    return name if not prefix or name.startswith(prefix) or name == "" else prefix + name


def _run(
    conn: Any,
    prefix: str,
    command: str,
    args: list[str],
    listing: Listing | None,
    known: list[str],
) -> str:
    import pika.exceptions

    if command in ("exchanges", "queues", "bindings"):
        return _list(conn, prefix, command, listing, known)
    channel = conn.channel()
    try:
        if command == "peek":
            queue = _name(prefix, args[0])
            count = int(args[1]) if len(args) > 1 else 5
            lines = []
            for _ in range(count):
                method, props, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                text = body.decode("utf-8", "replace")
                extra = " (redelivered)" if method.redelivered else ""
                headers = f" headers={props.headers}" if props.headers else ""
                lines.append(f"[{method.routing_key}]{extra}{headers} {text[:200]}")
            return "\n".join(lines) or f"{queue} is empty."
        if command == "publish":
            exchange, key, body = _name(prefix, args[0]), args[1], args[2]
            if not exchange:  # the default exchange routes by queue name
                key = _name(prefix, key)
            # Confirmed and mandatory: a message no queue takes is reported, not lost quietly.
            channel.confirm_delivery()
            try:
                channel.basic_publish(exchange, key, body.encode(), mandatory=True)
            except pika.exceptions.UnroutableError:
                return (
                    f"not delivered: no queue is bound to {exchange or '(default)'} for key {key}"
                )
            return f"published to {exchange or '(default)'} with key {key}"
        if command == "purge":
            queue = _name(prefix, args[0])
            frame = channel.queue_purge(queue)
            return f"purged {frame.method.message_count} message(s) from {queue}"
        return HELP
    finally:
        if channel.is_open:
            channel.close()  # unacknowledged peeks go back to their queue


def _list(conn: Any, prefix: str, what: str, listing: Listing | None, known: list[str]) -> str:
    import pika.exceptions

    if listing is not None:
        rows = [
            r
            for r in listing()[what]
            if str(r.get("name", r.get("source_name", ""))).startswith(prefix)
        ]
        if not rows:
            return f"(no {what})"
        return "\n".join("  ".join(f"{k}={v}" for k, v in row.items()) for row in rows)
    if what != "queues":
        return f"This broker does not let sdtutor list {what} (no management plugin)."
    lines = []
    for name in known:
        channel = conn.channel()
        try:
            frame = channel.queue_declare(prefix + name, passive=True)
            lines.append(
                f"{prefix + name}  messages={frame.method.message_count}  "
                f"consumers={frame.method.consumer_count}"
            )
            channel.close()
        except pika.exceptions.ChannelClosed:
            lines.append(f"{prefix + name}  (not declared yet)")
    return "\n".join(lines) or "(this lab lists no queues)"


__all__ = ["HELP", "prompt"]
