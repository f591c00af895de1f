"""Checks for the message-queues lab: read the broker itself, never the clock.

Every check starts from a clean slate: it deletes the lab's exchanges and queues, calls
the learner's declare_topology, and then looks at what RabbitMQ holds. A queue's
arguments are read by declaring it again on a throwaway channel (a passive declare only
says that it exists; a mismatch fails with 406 and names the current value). Routing,
dead-lettering and redelivery are judged by where test messages end up; acks, rejects
and confirms by the AMQP methods the proxy saw. The learner's functions run in a child
process through harness.py; what that returns only words the messages.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdtutor.lab.checks import CheckContext, Evidence, Fail, Pass, check

HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_billing_harness.py"  # its name in the sandbox, beside pipeline.py
PIPELINE = "pipeline.py"
CRASH_AFTER = 1.0  # harness.CRASH_AFTER: the dying handler's wait before it exits

EXCHANGE, BILLING, DLX, DEAD, TAP = (
    "orders",
    "orders.billing",
    "orders.dlx",
    "orders.billing.dead",
    "check.tap",  # the checker's own queue, bound to everything, for the publish check
)

ROUTES = {
    "order.created": True,
    "order.paid.card": True,
    "order.paid.bank-transfer": True,
    "order.viewed": False,
    "order.shipped": False,
    "order.cancelled": False,
}
CRASH_ORDERS = 60
MAX_PREFETCH = 50
POISON = 8002
BILLING_ORDERS = [
    {"id": 8001, "event": "created", "total": "19.90"},
    {"id": POISON, "event": "created", "total": "a lot"},
    {"id": 8003, "event": "paid.card", "total": "42.00"},
    {"id": 8004, "event": "created", "total": "7.50"},
]
RELAY_ORDERS = [
    {"id": 9001, "event": "created", "total": "19.90"},
    {"id": 9001, "event": "paid.card", "total": "19.90"},
    {"id": 9002, "event": "viewed"},
]


# ------------------------------------------------------------------ reading the broker


@dataclass
class Found:
    """An exchange or queue as the broker has it (read by declaring it again)."""

    name: str
    exists: bool
    type: str = ""  # exchanges: topic, fanout, …; queues: classic, quorum, …
    durable: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)

    def row(self, what: str) -> tuple[Any, ...]:
        """A row of the topology table."""
        if not self.exists:
            return (f"{what} {self.name}", "missing", "", "", "")
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.arguments.items()))
        return (f"{what} {self.name}", self.type, self.durable, self.auto_delete, args)


def _exchange(ctx: CheckContext, name: str) -> Found:
    facts = ctx.exchange(name)
    if not facts.exists:
        return Found(name, False)
    flags = facts.declaration.flags
    return Found(
        name,
        True,
        str(facts.type),
        bool(facts.durable),
        bool(flags.get("auto_delete")),
        dict(facts.declaration.arguments),
    )


def _queue(ctx: CheckContext, name: str) -> Found:
    facts = ctx.queue(name)
    if facts.exclusive_elsewhere:
        raise Fail(
            f"{name} is an exclusive queue: only the connection that declared it may use it, "
            f"and it disappears with that connection. A work queue outlives its workers: "
            f"declare it without exclusive=True."
        )
    if not facts.exists:
        return Found(name, False)
    found = facts.declaration()
    if found.unreadable:
        raise Fail(f"The checker could not read how {name} was declared: {found.unreadable}")
    args = dict(found.arguments)
    return Found(
        name,
        True,
        str(args.get("x-queue-type") or "classic"),
        bool(found.flags.get("durable")),
        bool(found.flags.get("auto_delete")),
        args,
    )


def _need(ctx: CheckContext, what: str, name: str) -> Found:
    found = _exchange(ctx, name) if what == "exchange" else _queue(ctx, name)
    if not found.exists:
        raise Fail(
            f"After declare_topology ran there is no {what} named {name} "
            f"({ctx.amqp_name(name)} with the prefix), and this check needs it. "
            f"Declare it in declare_topology, durable and not exclusive (the `topology` "
            f"check says more)."
        )
    return found


def _counts(ctx: CheckContext, name: str) -> tuple[int, int]:
    """(messages ready, consumers) of a queue; (0, 0) when it does not exist."""
    facts = ctx.queue(name)
    return facts.messages, facts.consumers


def _settle(ctx: CheckContext, names: tuple[str, ...], expect: int | None = None) -> None:
    """Wait until a finished or dead worker's unacked messages are back in its queue.

    Done when the queues' counts reach `expect` in total, or stop changing for half a
    second with no consumer left (AMQP cannot show unacked messages, only ready ones).
    """
    deadline = time.monotonic() + 5
    last: list[tuple[int, int]] = []
    since = time.monotonic()
    while time.monotonic() < deadline:
        now = [_counts(ctx, name) for name in names]
        idle = all(consumers == 0 for _, consumers in now)
        if idle and expect is not None and sum(n for n, _ in now) >= expect:
            return
        if now != last:
            last, since = now, time.monotonic()
        elif idle and time.monotonic() - since >= 0.5:
            return
        time.sleep(0.05)


@dataclass
class Message:
    """A message the checker took from a queue."""

    routing_key: str
    exchange: str
    redelivered: bool
    delivery_mode: int | None
    headers: dict[str, Any]
    body: bytes

    @property
    def order(self) -> dict[str, Any]:
        """The body as JSON ({} when it is not)."""
        try:
            value = json.loads(self.body)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def _channel(ctx: CheckContext) -> Any:
    return ctx.amqp().channel()


def _drain(ctx: CheckContext, name: str, limit: int = 1000) -> list[Message]:
    """Take every message from a queue (the checker's test messages), in order."""
    import pika.exceptions

    out: list[Message] = []
    channel = _channel(ctx)
    try:
        while len(out) < limit:
            method, props, body = channel.basic_get(ctx.amqp_name(name), auto_ack=True)
            if method is None:
                break
            out.append(
                Message(
                    method.routing_key,
                    method.exchange,
                    bool(method.redelivered),
                    props.delivery_mode,
                    dict(props.headers or {}),
                    body,
                )
            )
        channel.close()
    except pika.exceptions.ChannelClosedByBroker:
        pass  # the queue does not exist: nothing in it
    return out


def _put(
    ctx: CheckContext, orders: list[dict[str, Any]], exchange: str = "", key: str = ""
) -> None:
    """Publish test orders, persistent and confirmed (to billing's queue by default)."""
    import pika

    channel = _channel(ctx)
    channel.confirm_delivery()
    for order in orders:
        channel.basic_publish(
            ctx.amqp_name(exchange),
            key or ctx.amqp_name(BILLING),
            json.dumps(order).encode(),
            pika.BasicProperties(delivery_mode=2, content_type="application/json"),
        )
    channel.close()


def _each(ctx: CheckContext, action: str, *names: str) -> None:
    """queue_delete / queue_purge / exchange_delete each name, ignoring missing ones."""
    import pika.exceptions

    for name in names:
        channel = _channel(ctx)
        try:
            getattr(channel, action)(ctx.amqp_name(name))
            channel.close()
        except pika.exceptions.ChannelClosedByBroker:
            pass  # not there


# ------------------------------------------------------------------ running the learner


def _run(ctx: CheckContext, function: str, *args: Any, timeout: float) -> Any:
    """Call harness.FUNCTION(connection, "pipeline.py", *args) in the learner's sandbox.

    `files` puts the lab's harness into the sandbox's copy of the workspace (replacing any
    learner file of that name); the harness imports pipeline.py from beside it.
    """
    ctx.read(PIPELINE)  # a missing file fails here, with what to do
    return ctx.run(
        HARNESS_FILE,
        function,
        PIPELINE,
        *args,
        clients=("rabbitmq",),
        files={HARNESS_FILE: HARNESS},
        timeout=timeout,
    )


def _methods(run: Any, name: str = "methods") -> list[str]:
    server = getattr(run, "server", {}) or {}
    stats = server.get("rabbitmq") if isinstance(server, dict) else None
    return list(getattr(stats, name, []) or [])


def _why(run: Any) -> str:
    """What went wrong in a learner run, in words, with advice for the usual AMQP errors."""
    if run.timed_out:
        return "did not finish in time (is it waiting for something, or looping?)"
    error = str(run.error or "").strip()
    text = f"raised {error}" if error else "failed"
    if "PRECONDITION_FAILED" in error and "inequivalent" in error:
        text += (
            ". RabbitMQ refuses to declare an existing name again with different settings "
            "(406 PRECONDITION_FAILED): the same queue or exchange is declared twice in your "
            "code with different durability, type or arguments. Declare each one once, in "
            "declare_topology, and only consume from it in consume()"
        )
    elif "PRECONDITION_FAILED" in error and "invalid arg" in error:
        text += (
            ". That argument is not valid here: x-delivery-limit, for one, exists only for "
            'quorum queues ("x-queue-type": "quorum")'
        )
    elif "NOT_IMPLEMENTED" in error and "global qos" in error:
        text += (
            ". Quorum queues do not support a prefetch for the whole channel "
            "(global_qos=True); set it per consumer (the default)"
        )
    elif "ACCESS_REFUSED" in error:
        text += ". Every name must start with AMQP_NAME_PREFIX (see the top of pipeline.py)"
    elif "NOT_FOUND" in error:
        text += ". A name your code uses does not exist: check the spelling and the prefix"
    return text


def _trace(run: Any) -> Evidence:
    return Evidence("what your code printed", "text", run.traceback or run.output or run.error)


_HUNG: dict[int, tuple[CheckContext, Fail]] = {}


def _fresh(ctx: CheckContext) -> None:
    """Delete the lab's names and call the learner's declare_topology on a clean broker."""
    hung = _HUNG.get(id(ctx))
    if hung is not None and hung[0] is ctx:
        raise hung[1]  # it hung once in this run: do not wait for it again in every check
    _each(ctx, "queue_delete", BILLING, DEAD, TAP)
    _each(ctx, "exchange_delete", EXCHANGE, DLX)
    run = _run(ctx, "topology", timeout=10)
    if not run.ok:
        failed = Fail(
            f"declare_topology(channel) {_why(run)}. Each check starts by deleting the lab's "
            f"exchanges and queues and calling it, so fix this first.",
            _trace(run),
        )
        if run.timed_out:
            _HUNG.clear()
            _HUNG[id(ctx)] = (ctx, failed)
        raise failed
    _each(ctx, "queue_purge", BILLING, DEAD)  # the checks count only their own messages


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Evidence:
    return Evidence(title, "table", (columns, rows))


def _mode(delivery_mode: int | None) -> str:
    return "no delivery_mode" if delivery_mode is None else f"delivery_mode {delivery_mode}"


def _orders(ids: list[Any]) -> str:
    return f"Order {ids[0]} was" if len(ids) == 1 else f"Orders {_ids(ids)} were"


def _ids(ids: list[Any]) -> str:
    ids = [str(i) for i in ids]
    return ids[0] if len(ids) == 1 else ", ".join(ids[:-1]) + " and " + ids[-1]


# ------------------------------------------------------------------ the checks


@check("topology")
def topology(ctx: CheckContext) -> Pass:
    """orders is a durable topic exchange; billing's queues and the DLX are durable."""
    _fresh(ctx)
    exchange, dlx = _exchange(ctx, EXCHANGE), _exchange(ctx, DLX)
    billing, dead = _queue(ctx, BILLING), _queue(ctx, DEAD)
    table = _table(
        "what RabbitMQ has after declare_topology",
        ("name", "type", "durable", "auto-delete", "arguments"),
        [
            exchange.row("exchange"),
            billing.row("queue"),
            dlx.row("exchange"),
            dead.row("queue"),
        ],
    )
    problems: list[str] = []
    if not exchange.exists:
        problems.append(f"There is no exchange {EXCHANGE}: declare it in declare_topology.")
    else:
        if exchange.type != "topic":
            problems.append(
                f"{EXCHANGE} is a {exchange.type} exchange. Billing wants some order events "
                f"and not others, chosen by pattern (every order.paid.<method>): only a topic "
                f"exchange matches routing keys against patterns."
            )
        if not exchange.durable:
            problems.append(
                f"{EXCHANGE} is not durable: a broker restart deletes it and all its "
                f"bindings, and publishers then fail. Declare it with durable=True."
            )
        if exchange.auto_delete:
            problems.append(
                f"{EXCHANGE} is auto-delete: it vanishes when its last queue is unbound."
            )
    if not billing.exists:
        problems.append(
            f"There is no queue {BILLING}: declare it in declare_topology (not exclusive: "
            f"an exclusive queue disappears with the connection that declared it)."
        )
    else:
        if not billing.durable:
            problems.append(
                f"{BILLING} is not durable: after a broker restart the queue is gone, and "
                f"every order waiting in it with it (persistent messages survive only in a "
                f"durable queue)."
            )
        if billing.auto_delete:
            problems.append(
                f"{BILLING} is auto-delete: it disappears when its last consumer "
                f"disconnects (every deploy), taking the waiting orders with it."
            )
    for name, found, what in ((DLX, dlx, "exchange"), (DEAD, dead, "queue")):
        if not found.exists:
            problems.append(
                f"There is no {what} {name}: billing's dead letters need "
                f"{'an exchange to go to' if what == 'exchange' else 'a queue to wait in'}."
            )
        elif not found.durable or found.auto_delete:
            problems.append(f"{name} must be durable (and not auto-delete) too.")
    if problems:
        raise Fail(" ".join(problems), table)
    return Pass(
        f"{EXCHANGE} is a durable topic exchange; {BILLING} is a durable {billing.type} queue; "
        f"{DLX} and {DEAD} are durable.",
        table,
    )


@check("routing")
def routing(ctx: CheckContext) -> Pass:
    """orders.billing gets order.created and order.paid.<method>, and no other event."""
    _fresh(ctx)
    exchange = _need(ctx, "exchange", EXCHANGE)
    _need(ctx, "queue", BILLING)
    for key in ROUTES:
        _put(ctx, [{"probe": key}], exchange=EXCHANGE, key=key)
    landed = [m.routing_key for m in _drain(ctx, BILLING)]
    table = _table(
        f"test messages published to {EXCHANGE}",
        ("routing key", "billing needs it", f"landed in {BILLING}"),
        [(k, "yes" if want else "no", landed.count(k)) for k, want in ROUTES.items()],
    )
    missing = [k for k, want in ROUTES.items() if want and k not in landed]
    extra = [k for k, want in ROUTES.items() if not want and k in landed]
    if exchange.type == "fanout" and extra:
        raise Fail(
            f"{BILLING} got every test message, {_ids(extra)} included: {EXCHANGE} is a "
            f"fanout exchange, which copies every message to every bound queue and ignores "
            f"routing keys. Which exchange type lets a queue choose events by key?",
            table,
        )
    if extra:
        raise Fail(
            f"{BILLING} also got {_ids(extra)}: billing would be handed events it does not "
            f"process (order.#, for one, matches every order event). "
            f"In a topic binding, * matches exactly one word and # zero or more: bind only "
            f"what billing needs.",
            table,
        )
    if missing:
        paid = [k for k in missing if k.startswith("order.paid.")]
        advice = (
            "Payments arrive as order.paid.<method> for any method, so one exact key "
            "(order.paid.card) is not enough: bind a pattern that matches one more word."
            if paid and len(paid) < 2
            else "Bind the keys billing needs to the queue with queue_bind(queue, exchange, "
            "routing_key=...), one call per key."
        )
        raise Fail(f"{BILLING} never got {_ids(missing)}. {advice}", table)
    return Pass(
        f"{BILLING} got {_ids([k for k, w in ROUTES.items() if w])}, and none of "
        f"{_ids([k for k, w in ROUTES.items() if not w])}.",
        table,
    )


@check("dead-letter")
def dead_letter(ctx: CheckContext) -> Pass:
    """A message rejected from orders.billing arrives in orders.billing.dead."""
    _fresh(ctx)
    billing = _need(ctx, "queue", BILLING)
    _need(ctx, "queue", DEAD)
    # Publish the way the shop does, so the dead letter keeps a real routing key.
    key = "order.created"
    order = {"id": 8100, "event": "created", "total": "x"}
    if _exchange(ctx, EXCHANGE).exists:
        _put(ctx, [order], exchange=EXCHANGE, key=key)
    if _counts(ctx, BILLING)[0] == 0:  # routing is the `routing` check's business
        key = ctx.amqp_name(BILLING)
        _put(ctx, [order])
    _drain(ctx, DEAD)  # only what the rejection sends counts
    channel = _channel(ctx)
    method, _props, _body = channel.basic_get(ctx.amqp_name(BILLING))
    if method is None:
        raise Fail(f"A message published to {BILLING} could not be read back from it.")
    channel.basic_reject(method.delivery_tag, requeue=False)
    channel.close()
    deadline = time.monotonic() + 2
    while _counts(ctx, DEAD)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    arrived = _drain(ctx, DEAD)
    args = billing.arguments
    shown = _table(
        f"arguments of {BILLING}",
        ("argument", "value"),
        [(k, v) for k, v in sorted(args.items())] or [("(none)", "")],
    )
    if arrived:
        death = (arrived[0].headers.get("x-death") or [{}])[0]
        reason = death.get("reason", b"")
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        how = (
            "x-dead-letter-exchange on the queue"
            if "x-dead-letter-exchange" in args
            else "a policy (the queue has no x-dead-letter-exchange argument)"
        )
        return Pass(
            f"A message rejected (requeue=False) from {BILLING} arrived in {DEAD}"
            f"{f' with x-death reason {reason!r}' if reason else ''}, through {how}.",
            shown,
        )
    dlx_name = args.get("x-dead-letter-exchange")
    if dlx_name is None:
        raise Fail(
            f"The checker took a message from {BILLING} and rejected it without requeue, "
            f"and it vanished: {BILLING} has no x-dead-letter-exchange argument, so "
            f"RabbitMQ simply drops what is rejected. A queue names where its rejects go "
            f"when it is declared (arguments are fixed at declaration: a queue that already "
            f"exists must be deleted first).",
            shown,
        )
    target, prefix = str(dlx_name), ctx.prefix("rabbitmq")
    # Only names under the lab's prefix are the learner's to look at.
    if target != ctx.amqp_name(DLX) and (
        not target.startswith(prefix) or not _exchange(ctx, target).exists
    ):
        raise Fail(
            f"{BILLING} dead-letters to {target!r}, and no exchange of that name exists "
            f"here: RabbitMQ drops dead letters it cannot deliver, silently. Name {DLX} "
            f"(with the prefix: {ctx.amqp_name(DLX)}).",
            shown,
        )
    routed = args.get("x-dead-letter-routing-key") or key
    dlx = _exchange(ctx, DLX)
    kind = dlx.type if dlx.exists else "missing"
    raise Fail(
        f"{BILLING} dead-letters to {DLX}, but the rejected message did not reach {DEAD}. "
        f"It left with routing key {routed!r} (a dead letter keeps its original key unless "
        f"the queue sets x-dead-letter-routing-key), and no binding from that exchange "
        f"({kind}) to {DEAD} matched it. Compare that key with how {DEAD} is bound.",
        shown,
    )


@dataclass
class Crash:
    """What the broker showed after the learner's worker died on its first message."""

    run: Any
    back: list[Message] = field(default_factory=list)
    dead: list[Message] = field(default_factory=list)
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Orders neither back in billing's queue nor dead-lettered."""
        return CRASH_ORDERS - len(self.back) - len(self.dead)

    @property
    def taken(self) -> int:
        """Orders the broker had handed to the worker when it died."""
        return CRASH_ORDERS - sum(1 for m in self.back if not m.redelivered)


_CRASHES: dict[int, tuple[CheckContext, Crash]] = {}


def _crash(ctx: CheckContext) -> Crash:
    """Publish orders, run the learner's worker with a handler that dies, read the broker."""
    memo = _CRASHES.get(id(ctx))
    if memo is not None and memo[0] is ctx:
        return memo[1]
    _fresh(ctx)
    billing = _need(ctx, "queue", BILLING)
    _put(ctx, [{"id": 7001 + i, "event": "created", "total": "10.00"} for i in range(CRASH_ORDERS)])
    run = _run(ctx, "consume", "crash", CRASH_ORDERS, timeout=CRASH_AFTER + 12)
    crash = Crash(run, arguments=billing.arguments)
    if run.ok or run.timed_out or run.traceback:
        return _remember(ctx, crash)  # it never called handle(), or broke first
    _settle(ctx, (BILLING, DEAD), CRASH_ORDERS)
    crash.back, crash.dead = _drain(ctx, BILLING), _drain(ctx, DEAD)
    return _remember(ctx, crash)


def _remember(ctx: CheckContext, crash: Crash) -> Crash:
    _CRASHES.clear()
    _CRASHES[id(ctx)] = (ctx, crash)
    return crash


def _never_died(crash: Crash) -> Fail | None:
    """A Fail when the worker never got as far as handling an order."""
    run = crash.run
    if run.ok:
        return Fail(
            f"consume() returned without passing any of the {CRASH_ORDERS} waiting orders to "
            f"handle(). It should take messages from {BILLING} and call handle(body) for "
            f"each, until it has seen max_messages of them.",
            _trace(run),
        )
    if run.timed_out:
        return Fail(
            f"{CRASH_ORDERS} orders were waiting in {BILLING}, and consume() ran until the "
            f"checker stopped it without ever calling handle(). Is it consuming from "
            f"{BILLING} (with the prefix)? Does it call handle(body) for each message?",
            _trace(run),
        )
    if run.traceback:
        return Fail(f"consume() {_why(run)}.", _trace(run))
    return None


def _crash_table(crash: Crash) -> Evidence:
    return _table(
        f"the {CRASH_ORDERS} orders, after the worker died",
        ("where", "orders"),
        [
            (f"back in {BILLING}, redelivered=True", sum(m.redelivered for m in crash.back)),
            (f"back in {BILLING}, never delivered", sum(not m.redelivered for m in crash.back)),
            (f"in {DEAD}", len(crash.dead)),
            ("lost", crash.lost),
        ],
    )


@check("redelivery")
def redelivery(ctx: CheckContext) -> Pass:
    """An order whose worker dies before acknowledging it is delivered again."""
    crash = _crash(ctx)
    failed = _never_died(crash)
    if failed:
        raise failed
    table = _crash_table(crash)
    acked = "basic.ack" in _methods(crash.run)
    if crash.lost:
        if acked:
            raise Fail(
                f"The worker died while handle() was working on its first order, and that "
                f"order was lost: {crash.lost} of {CRASH_ORDERS} never came back. It had "
                f"already been acknowledged, before handle() finished, so the broker deleted "
                f"it. When is an order really done?",
                table,
            )
        raise Fail(
            f"The worker died while handling its first order, and {crash.lost} of "
            f"{CRASH_ORDERS} orders were lost with it. The consumer never acknowledged "
            f"anything, yet the broker had deleted them: it was consuming with automatic "
            f"acknowledgement (auto_ack=True), where a message counts as done the moment it "
            f"is sent. The worker should say itself when an order is done.",
            table,
        )
    if crash.dead:
        limit = crash.arguments.get("x-delivery-limit")
        raise Fail(
            f"The worker died while handling its first order, and {len(crash.dead)} orders "
            f"went to {DEAD} instead of back to {BILLING}: a crash counts as a failed "
            f"delivery, and with x-delivery-limit {limit} the broker gives up at once. A "
            f"delivery limit is a safety net for poison messages: allow a few deliveries "
            f"(3 to 20), so an order whose worker crashed gets another try.",
            table,
        )
    others = sum(m.redelivered for m in crash.back) - 1
    also = f", with the {others} other orders it had been sent," if others > 0 else ""
    return Pass(
        f"The worker died while handling an order; the broker put it back{also} flagged "
        f"redelivered=True, and all {CRASH_ORDERS} orders were there for the next worker.",
        table,
    )


@check("prefetch")
def prefetch(ctx: CheckContext) -> Pass:
    """The worker holds a bounded number of unacknowledged orders (a prefetch of 1 to 50)."""
    crash = _crash(ctx)
    failed = _never_died(crash)
    if failed:
        raise failed
    table = _crash_table(crash)
    taken = crash.taken
    if taken > MAX_PREFETCH:
        methods = _methods(crash.run)
        if crash.lost and "basic.ack" not in methods:
            why = (
                "With auto_ack=True a prefetch has no effect: the limit counts "
                "unacknowledged messages, and there are none."
            )
        elif "basic.qos" not in methods:
            why = "The consumer never set a prefetch (basic_qos), so there was no limit."
        else:
            why = f"basic_qos was called, but the limit was 0 (no limit) or above {MAX_PREFETCH}."
        raise Fail(
            f"While handle() was busy with its first order, the broker had already pushed "
            f"{taken} of the {CRASH_ORDERS} waiting orders to this one worker. {why} Such a "
            f"worker hoards the backlog in its memory while other workers sit idle, and a "
            f"crash hits all of it at once. Limit how many unacknowledged orders the "
            f"broker may hand this consumer (at most {MAX_PREFETCH}).",
            table,
        )
    return Pass(
        f"When the worker died the broker had handed it {taken} of the {CRASH_ORDERS} "
        f"orders; the other {CRASH_ORDERS - taken} had stayed in {BILLING}, free for other "
        f"workers.",
        table,
    )


@check("poison")
def poison(ctx: CheckContext) -> Pass:
    """The worker acks what handle() processed and dead-letters what it cannot, without looping."""
    _fresh(ctx)
    _need(ctx, "queue", BILLING)
    _put(ctx, BILLING_ORDERS)
    count = len(BILLING_ORDERS)
    run = _run(ctx, "consume", "billing", count, timeout=15)
    _settle(ctx, (BILLING, DEAD))
    left, dead = _drain(ctx, BILLING), _drain(ctx, DEAD)
    methods = _methods(run)
    deliveries = sum(
        1 for m in _methods(run, "server_methods") if m in ("basic.deliver", "basic.get-ok")
    )
    rejects = sum(1 for m in methods if m in ("basic.reject", "basic.nack"))
    left_ids = [m.order.get("id") for m in left]
    dead_ids = [m.order.get("id") for m in dead]
    table = _table(
        f"the {count} test orders (order {POISON} makes handle() raise)",
        ("where", "orders"),
        [
            (f"still in {BILLING}", ", ".join(map(str, left_ids)) or "none"),
            (f"in {DEAD}", ", ".join(map(str, dead_ids)) or "none"),
            ("deliveries to the worker", deliveries),
            ("basic.ack / basic.reject+nack sent", f"{methods.count('basic.ack')} / {rejects}"),
        ],
    )
    if run.timed_out:
        why = (
            f"It got {deliveries} deliveries for {count} orders: a failed order that goes "
            f"back to the queue (requeue=True) comes back again and again."
            if deliveries > count
            else f"It got {deliveries} deliveries and kept waiting for more."
        )
        raise Fail(
            f"consume() was called with max_messages={count} and {count} orders waiting, "
            f"and it had not returned when the checker stopped it. {why} Count every "
            f"message, done or failed, and return after max_messages.",
            table,
        )
    if not run.ok:
        if "is not a number" in str(run.error):
            fate = (
                f"it went back to {BILLING}, unacknowledged, where it will kill the next worker too"
                if POISON in left_ids
                else "it is gone: auto-ack had already deleted it"
            )
            raise Fail(
                f"consume() stopped with the ValueError that handle() raised for order "
                f"{POISON}: one bad order killed the worker, and {fate}. One bad order must "
                f"not stop the worker: deal with that one message and go on.",
                table,
                _trace(run),
            )
        raise Fail(f"consume() {_why(run)}.", table, _trace(run))
    if POISON in left_ids:
        how = (
            "rejected it with requeue=True, so the broker put it back"
            if rejects
            else "never acknowledged or rejected it, so it went back when the channel closed"
        )
        raise Fail(
            f"Order {POISON}, which handle() cannot process, was back in {BILLING} at the "
            f"end, after {deliveries} deliveries for {count} orders: your worker {how}. It "
            f"fails the same way every time, so requeueing it only loops. It belongs with "
            f"the dead letters.",
            table,
        )
    good = [o["id"] for o in BILLING_ORDERS if o["id"] != POISON]
    stuck = [i for i in left_ids if i in good]
    if stuck:
        raise Fail(
            f"{_orders(stuck)} still in {BILLING} at the end, unacknowledged: "
            f"{'it goes' if len(stuck) == 1 else 'they go'} back to the queue when the "
            f"channel closes and will be processed again. Every message must be settled "
            f"once handle() is done with it, and every one counts towards max_messages.",
            table,
        )
    misfiled = [i for i in dead_ids if i in good]
    if misfiled:
        raise Fail(
            f"{_orders(misfiled)} in {DEAD}, although handle() never failed on "
            f"{'it' if len(misfiled) == 1 else 'them'}. Reject only the message whose "
            f"handle() raised, and ack the rest. (With a quorum queue, a message handed back "
            f"unprocessed also counts against x-delivery-limit.)",
            table,
        )
    if not rejects:
        raise Fail(
            f"handle() raised for order {POISON}, and then the order vanished: it is neither "
            f"in {BILLING} nor in {DEAD}. The worker acknowledged it (or auto-ack had "
            f"deleted it already), so a failed order is lost without a trace. It should end "
            f"in {DEAD}, for someone to look at.",
            table,
        )
    where = (
        f"it ended in {DEAD}"
        if POISON in dead_ids
        else f"it left the queue, but did not reach {DEAD} (the `dead-letter` check says why)"
    )
    return Pass(
        f"handle() raised for order {POISON}; the worker rejected it and {where} instead of "
        f"looping, and the worker acked orders {_ids(good)} and went on.",
        table,
    )


@check("publish")
def publish(ctx: CheckContext) -> Pass:
    """publish() sends each order persistent, to orders with key order.<event>, confirmed."""
    import pika.exceptions

    _fresh(ctx)
    _need(ctx, "exchange", EXCHANGE)
    channel = _channel(ctx)
    try:
        channel.queue_declare(ctx.amqp_name(TAP), exclusive=True, auto_delete=True)
        channel.queue_bind(ctx.amqp_name(TAP), ctx.amqp_name(EXCHANGE), routing_key="#")
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise Fail(f"The checker could not listen on {EXCHANGE}: {exc.reply_text}") from None
    run = _run(ctx, "publish", RELAY_ORDERS, timeout=15)
    got = _drain(ctx, TAP)
    channel.queue_delete(ctx.amqp_name(TAP))
    channel.close()
    table = _table(
        f"what reached {EXCHANGE}",
        ("routing key", "delivery_mode", "body"),
        [(m.routing_key, m.delivery_mode, m.body[:60].decode(errors="replace")) for m in got]
        or [("(nothing)", "", "")],
    )
    if not run.ok:
        raise Fail(f"publish(channel, orders) {_why(run)}.", table, _trace(run))
    if len(got) != len(RELAY_ORDERS):
        raise Fail(
            f"publish() was given {len(RELAY_ORDERS)} orders, and {len(got)} messages reached "
            f"{EXCHANGE}. Publish each order once, to the {EXCHANGE} exchange (with the "
            f"prefix: {ctx.amqp_name(EXCHANGE)}).",
            table,
        )
    for order, message in zip(RELAY_ORDERS, got, strict=True):
        key = "order." + str(order["event"])
        if message.routing_key != key:
            raise Fail(
                f"Order {order['id']}'s {order['event']!r} event went out with routing key "
                f"{message.routing_key!r}; queues bind to order.<event>, so it must be "
                f"{key!r}.",
                table,
            )
        if message.order != order:
            raise Fail(
                f"The message for order {order['id']} ({order['event']}) does not hold the "
                f"order as JSON: {message.body[:80]!r}. Send json.dumps(order).",
                table,
            )
    transient = [m for m in got if m.delivery_mode != 2]
    if transient:
        raise Fail(
            f"{len(transient)} of {len(got)} messages were published transient "
            f"({_mode(transient[0].delivery_mode)}). A durable queue survives a broker "
            f"restart, but only persistent messages survive with it: durability is per "
            f"queue, persistence per message: mark each message persistent.",
            table,
        )
    methods = _methods(run)
    if "confirm.select" not in methods and "tx.select" not in methods:
        raise Fail(
            "The orders arrived, but publish() could not know that they had: without "
            "publisher confirms, basic_publish returns once the bytes are written, and a "
            "message lost with a dropped connection is lost silently. With publisher confirms "
            "on the channel, the broker acknowledges each message it has taken.",
            table,
        )
    return Pass(
        f"All {len(got)} orders reached {EXCHANGE} as persistent JSON messages with keys "
        f"{_ids([m.routing_key for m in got])}, on a channel with publisher confirms.",
        table,
    )
