"""Calls the learner's pipeline.py the way the billing service would; runs in their process.

The checks run these functions through the runner, which puts this file into the
sandbox's copy of the workspace, beside pipeline.py (`ctx.run(..., files=...)`), so the
learner's module is imported into the same child process. Nothing here decides a verdict:
the learner's code could change what these functions return, so the checks judge from
what the broker holds afterwards and what the proxy saw on the wire, and use the values
returned here only to word their messages.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sdtutor.lab.runner.harness import import_learner

CRASH_AFTER = 1.0
"""Seconds the dying handler waits before the process exits: time for the broker to push
every message the consumer's prefetch allows, so the redelivered count measures it."""
CRASH_EXIT = 17


def _learner(name: str) -> Any:
    """The learner's module `name`, imported afresh from beside this file in the sandbox."""
    return import_learner(Path(__file__).with_name(name))


def _order(body: Any) -> dict[str, Any]:
    """The order in a message body, whether handed over as bytes, text or already decoded."""
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body).decode()
    order = json.loads(body)
    if not isinstance(order, dict):
        raise ValueError(f"not an order: {body!r}")
    return order


def topology(connection: Any, file: str) -> str:
    """Call declare_topology(channel) on a fresh channel."""
    module = _learner(file)
    module.declare_topology(connection.channel())
    return "declared"


def publish(connection: Any, file: str, orders: list[dict[str, Any]]) -> int:
    """Call publish(channel, orders) on a fresh channel, as one relay run would."""
    module = _learner(file)
    module.publish(connection.channel(), orders)
    return len(orders)


def consume(connection: Any, file: str, mode: str, max_messages: int) -> dict[str, Any]:
    """Call consume(channel, handle, max_messages) with a handler chosen by `mode`.

    "billing": charge the order; raise ValueError when its total is not a number (a
    poison message: it fails the same way every time). "crash": the worker dies (the
    process exits at once, no cleanup) while handling the first order it gets.
    """
    module = _learner(file)
    seen: dict[str, list[Any]] = {"handled": [], "failed": []}

    def billing(body: Any) -> None:
        order = _order(body)
        total = order.get("total")
        try:
            float(str(total))
        except (TypeError, ValueError):
            seen["failed"].append(order.get("id"))
            raise ValueError(f"order {order.get('id')}: total {total!r} is not a number") from None
        seen["handled"].append(order.get("id"))

    def crash(body: Any) -> None:
        time.sleep(CRASH_AFTER)
        os._exit(CRASH_EXIT)  # like a kill -9 or an OOM kill: no except, no finally

    handle = crash if mode == "crash" else billing
    module.consume(connection.channel(), handle, max_messages)
    return seen
