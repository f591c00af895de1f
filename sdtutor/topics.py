"""The twenty topics of the course, and how a TOPIC argument resolves to one."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sdtutor.errors import UsageError


@dataclass(frozen=True)
class Topic:
    """One concept of the course: its number, slug and title."""

    number: int
    slug: str
    title: str

    @property
    def dirname(self) -> str:
        """The `NN-slug` stem used for lesson, quiz and lab files."""
        return f"{self.number:02d}-{self.slug}"


TOPICS: tuple[Topic, ...] = (
    Topic(1, "monolith-vs-microservices", "Monolith vs microservices"),
    Topic(2, "database-selection", "SQL vs NoSQL vs NewSQL, ACID"),
    Topic(3, "api-design", "REST vs GraphQL vs gRPC"),
    Topic(4, "auth", "Authentication & authorization"),
    Topic(5, "caching", "Caching layers and strategies"),
    Topic(6, "message-queues", "Kafka vs RabbitMQ vs SQS"),
    Topic(7, "indexing", "Database indexing & query optimization"),
    Topic(8, "rate-limiting", "Rate limiting & throttling"),
    Topic(9, "load-balancing", "Load balancing"),
    Topic(10, "replication-sharding", "Replication & sharding"),
    Topic(11, "event-driven", "Event sourcing, CQRS, sagas"),
    Topic(12, "observability", "Logs, metrics, traces, alerting"),
    Topic(13, "ci-cd", "CI/CD and deployment strategies"),
    Topic(14, "containers", "Containers & orchestration"),
    Topic(15, "serverless", "Serverless vs dedicated servers"),
    Topic(16, "consistency", "CAP, consistency models, 2PC, sagas"),
    Topic(17, "background-jobs", "Background jobs & scheduling"),
    Topic(18, "file-storage", "Object storage, uploads, CDN"),
    Topic(19, "security", "Backend security"),
    Topic(20, "scaling", "Scaling patterns"),
)

_BY_SLUG = {t.slug: t for t in TOPICS}


def resolve(arg: str) -> Topic:
    """Find a topic by number, slug or unambiguous slug prefix.

    Raises UsageError naming close matches when nothing, or more than one, fits.
    """
    text = arg.strip().lower()
    if text.isdigit():
        number = int(text)
        for topic in TOPICS:
            if topic.number == number:
                return topic
        raise UsageError(
            f"There is no topic number {number}.",
            "Topics are numbered 1 to 20; `sdtutor list` shows them all.",
        )
    if text in _BY_SLUG:
        return _BY_SLUG[text]
    prefixed = [t for t in TOPICS if t.slug.startswith(text)] if text else []
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        names = ", ".join(t.slug for t in prefixed)
        raise UsageError(
            f"'{arg}' could mean more than one topic: {names}.",
            "Type more of the name, or use the topic's number.",
        )
    close = difflib.get_close_matches(text, list(_BY_SLUG), n=3, cutoff=0.5)
    close += [t.slug for t in TOPICS if text and text in t.slug and t.slug not in close]
    hint = (
        f"Did you mean {', '.join(close[:3])}?"
        if close
        else "`sdtutor list` shows all twenty topics."
    )
    raise UsageError(f"There is no topic called '{arg}'.", hint)


__all__ = ["TOPICS", "Topic", "resolve"]
