"""RabbitMQ evidence over AMQP: queue and exchange facts, read from the broker itself.

A passive declare only says that a queue exists (and its message and consumer counts).
To learn how it was declared, declare it again on a throwaway channel: the broker
accepts a declaration equivalent to the existing one and refuses any other with 406
PRECONDITION_FAILED, naming the first property that differs and its current value. An
argument the check does not ask about is adopted from that reply and the declaration
retried, so "declared with these arguments?" ignores the learner's other arguments.
A property set by a policy (a dead-letter exchange, say) is not part of a declaration
and cannot be seen this way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sdtutor.lab.checks.outcome import Fail
from sdtutor.lab.results import Evidence

_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<key>[^']+)' for (?:queue|exchange) .*?: "
    r"received (?P<received>.+?) but current is (?P<current>.+)$"
)
_TYPED = re.compile(r"the value '(?P<value>.*)' of type '(?P<type>\w+)'$")
_INTEGER_TYPES = {
    "byte",
    "unsignedbyte",
    "short",
    "unsignedshort",
    "signedint",
    "unsignedint",
    "long",
    "signedlong",
    "timestamp",
}
FLAGS = ("durable", "auto_delete", "exclusive", "internal", "type")
_MAX_TRIES = 16


class Unreadable(Exception):
    """A 406 reply this module cannot turn into a value."""


def _value(text: str) -> Any:
    """A value as a 406 reply prints it: none, 'x', or the value 'x' of type 't'."""
    text = text.strip()
    if text == "none":
        return None
    typed = _TYPED.match(text)
    if typed:
        value, kind = typed["value"], typed["type"]
        if kind in _INTEGER_TYPES:
            return int(value)
        if kind in ("float", "double"):
            return float(value)
        if kind == "bool":
            return value == "true"
        if kind in ("longstr", "shortstr", "binary"):
            return value
        raise Unreadable(text)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        inner = text[1:-1]
        return {"true": True, "false": False}.get(inner, inner)
    raise Unreadable(text)


def parse_mismatch(reply: str) -> tuple[str, Any]:
    """(property, current value) from a 406 PRECONDITION_FAILED reply text."""
    found = _INEQUIVALENT.search(reply)
    if not found:
        raise Unreadable(reply)
    return found["key"], _value(found["current"])


@dataclass(frozen=True)
class Mismatch:
    """A property declared otherwise than the check expects."""

    key: str
    expected: Any
    actual: Any  # None: not set

    def __str__(self) -> str:
        shown = "not set" if self.actual is None else repr(self.actual)
        return f"{self.key} is {shown}, expected {self.expected!r}"


@dataclass
class Declaration:
    """How an exchange or queue was declared, as far as re-declaring can tell."""

    flags: dict[str, Any] = field(default_factory=dict)  # durable, auto_delete, type, …
    arguments: dict[str, Any] = field(default_factory=dict)  # x-… arguments
    mismatches: list[Mismatch] = field(default_factory=list)
    unreadable: str = ""  # a 406 reply that could not be read


OpenChannel = Callable[[], Any]


@contextmanager
def throwaway(open_channel: OpenChannel) -> Iterator[Any]:
    """A channel for one probe; closed afterwards unless the broker closed it."""
    channel = open_channel()
    try:
        yield channel
    finally:
        if channel.is_open:
            channel.close()


def _closed_by_broker(exc: BaseException) -> tuple[int, str] | None:
    import pika.exceptions

    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        return int(exc.reply_code), str(exc.reply_text)
    return None


def redeclare(
    open_channel: OpenChannel,
    declare: Callable[[Any, dict[str, Any], dict[str, Any]], None],
    flags: dict[str, Any],
    expected_flags: dict[str, Any],
    expected_arguments: dict[str, Any],
) -> Declaration:
    """Declare again until the broker agrees, adopting what the check did not ask about.

    `flags` are the starting guesses for properties the check does not fix. Returns the
    declaration the broker accepted and each expected property it had otherwise.
    """
    import pika.exceptions

    guess_flags = {**flags, **expected_flags}
    guess_args = dict(expected_arguments)
    result = Declaration()
    for _ in range(_MAX_TRIES):
        try:
            with throwaway(open_channel) as channel:
                declare(channel, guess_flags, guess_args)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:
                raise
            try:
                key, current = parse_mismatch(str(exc.reply_text))
            except Unreadable:
                result.unreadable = str(exc.reply_text)
                break
            target = guess_flags if key in FLAGS else guess_args
            if key in expected_flags or key in expected_arguments:
                wanted = expected_flags.get(key, expected_arguments.get(key))
                result.mismatches.append(Mismatch(key, wanted, current))
            if current is None:
                target.pop(key, None)
            elif target.get(key, object()) == current:
                result.unreadable = str(exc.reply_text)  # no progress: give up
                break
            else:
                target[key] = current
            continue
        result.flags, result.arguments = guess_flags, guess_args
        return result
    result.flags, result.arguments = guess_flags, guess_args
    return result


# ---------------------------------------------------------------- queues


@dataclass
class QueueFacts:
    """A queue as the broker sees it: exists, messages ready, consumers."""

    name: str
    exists: bool
    messages: int = 0
    consumers: int = 0
    exclusive_elsewhere: bool = False  # owned by another connection (405 RESOURCE_LOCKED)
    open_channel: OpenChannel | None = field(default=None, repr=False)

    def evidence(self, title: str | None = None) -> Evidence:
        """The queue's facts as a table."""
        return Evidence(
            title or f"queue {self.name}",
            "table",
            (
                ("queue", "exists", "messages ready", "consumers"),
                [(self.name, "yes" if self.exists else "no", self.messages, self.consumers)],
            ),
        )

    def must_exist(self, why: str) -> QueueFacts:
        """Fail when the queue does not exist."""
        if not self.exists:
            raise Fail(why, self.evidence())
        return self

    def declaration(
        self,
        durable: bool | None = None,
        arguments: dict[str, Any] | None = None,
        auto_delete: bool | None = None,
    ) -> Declaration:
        """Re-declare with these expectations; see the module's docstring."""
        if not self.exists or self.open_channel is None:
            return Declaration(mismatches=[Mismatch("exists", True, False)])
        expected_flags = {
            k: v for k, v in (("durable", durable), ("auto_delete", auto_delete)) if v is not None
        }
        starting = {"durable": True, "auto_delete": False, "exclusive": False}

        def declare(channel: Any, flags: dict[str, Any], args: dict[str, Any]) -> None:
            channel.queue_declare(
                self.name,
                durable=bool(flags.get("durable")),
                auto_delete=bool(flags.get("auto_delete")),
                exclusive=bool(flags.get("exclusive")),
                arguments=args or None,
            )

        return redeclare(self.open_channel, declare, starting, expected_flags, arguments or {})

    def must_be_declared_with(
        self,
        why: str,
        durable: bool | None = None,
        arguments: dict[str, Any] | None = None,
        auto_delete: bool | None = None,
    ) -> QueueFacts:
        """Fail unless the queue exists and was declared with these flags and arguments."""
        self.must_exist(why)
        found = self.declaration(durable=durable, arguments=arguments, auto_delete=auto_delete)
        if found.mismatches or found.unreadable:
            raise Fail(why, declaration_evidence(self.name, found), self.evidence())
        return self


def declaration_evidence(name: str, found: Declaration) -> Evidence:
    """What re-declaring showed about an exchange or queue."""
    lines = [f"{k}: {v!r}" for k, v in sorted(found.flags.items())]
    lines += [f"{k}: {v!r}" for k, v in sorted(found.arguments.items())] or ["(no arguments)"]
    if found.mismatches:
        lines.append("differs from what the check expects:")
        lines += [f"  {m}" for m in found.mismatches]
    if found.unreadable:
        lines.append(f"the broker said: {found.unreadable}")
    return Evidence(f"how {name} was declared", "text", "\n".join(lines))


def queue_facts(open_channel: OpenChannel, name: str) -> QueueFacts:
    """Passive declare on a throwaway channel: exists, messages, consumers."""
    import pika.exceptions

    try:
        with throwaway(open_channel) as channel:
            ok = channel.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return QueueFacts(name, exists=False, open_channel=open_channel)
        if exc.reply_code == 405:
            return QueueFacts(name, True, exclusive_elsewhere=True, open_channel=open_channel)
        raise
    return QueueFacts(
        name,
        exists=True,
        messages=int(ok.method.message_count),
        consumers=int(ok.method.consumer_count),
        open_channel=open_channel,
    )


# ---------------------------------------------------------------- exchanges


@dataclass
class ExchangeFacts:
    """An exchange as the broker sees it: exists, and how it was declared."""

    name: str
    exists: bool
    declaration: Declaration = field(default_factory=Declaration)

    @property
    def type(self) -> str | None:
        """direct, fanout, topic, headers (or a plugin's type); None when missing."""
        value = self.declaration.flags.get("type")
        return str(value) if self.exists and value is not None else None

    @property
    def durable(self) -> bool | None:
        """Whether it survives a broker restart; None when missing."""
        return bool(self.declaration.flags.get("durable")) if self.exists else None

    def evidence(self, title: str | None = None) -> Evidence:
        """The exchange's facts as a table."""
        return Evidence(
            title or f"exchange {self.name}",
            "table",
            (
                ("exchange", "exists", "type", "durable"),
                [
                    (
                        self.name,
                        "yes" if self.exists else "no",
                        self.type or "",
                        "" if self.durable is None else ("yes" if self.durable else "no"),
                    )
                ],
            ),
        )

    def must_exist(self, why: str) -> ExchangeFacts:
        """Fail when the exchange does not exist."""
        if not self.exists:
            raise Fail(why, self.evidence())
        return self

    def must_be(self, exchange_type: str, why: str) -> ExchangeFacts:
        """Fail unless the exchange exists and is of this type (topic, direct, …)."""
        if self.type != exchange_type:
            raise Fail(why, self.evidence())
        return self


def exchange_facts(open_channel: OpenChannel, name: str) -> ExchangeFacts:
    """Passive declare, then re-declare until the broker agrees: type, durable, …"""
    import pika.exceptions

    try:
        with throwaway(open_channel) as channel:
            channel.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return ExchangeFacts(name, exists=False)
        raise
    if name == "" or name.startswith("amq."):  # reserved: cannot be declared, only read
        kind = {"": "direct", "amq.match": "headers"}.get(name, name.removeprefix("amq."))
        return ExchangeFacts(name, True, Declaration(flags={"type": kind, "durable": True}))

    def declare(channel: Any, flags: dict[str, Any], args: dict[str, Any]) -> None:
        channel.exchange_declare(
            name,
            exchange_type=str(flags["type"]),
            durable=bool(flags.get("durable")),
            auto_delete=bool(flags.get("auto_delete")),
            internal=bool(flags.get("internal")),
            arguments=args or None,
        )

    starting = {"type": "direct", "durable": True, "auto_delete": False, "internal": False}
    return ExchangeFacts(name, True, redeclare(open_channel, declare, starting, {}, {}))


__all__ = [
    "Declaration",
    "ExchangeFacts",
    "Mismatch",
    "QueueFacts",
    "declaration_evidence",
    "exchange_facts",
    "parse_mismatch",
    "queue_facts",
    "redeclare",
]
