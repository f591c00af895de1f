"""What a run of learner code returns to the checker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdtutor.lab.proxy.stats import ProxyStats


@dataclass(frozen=True)
class Service:
    """A lab service the learner's code may talk to (its URL is proxied before they see it)."""

    kind: str
    """postgres | redis | rabbitmq | tcp"""
    url: str


@dataclass
class LearnerRun:
    """What happened when the learner's function ran.

    `value`, `error` and `traceback` come from the learner's process (the return value is
    the learner's by definition); everything else is measured outside it.
    """

    ok: bool
    value: Any = None
    error: str = ""
    traceback: str = ""
    timed_out: bool = False
    output: str = ""
    output_truncated: bool = False
    exit_code: int | None = None
    """The process's exit status; negative: killed by that signal."""
    killed: int = 0
    """Descendant processes still alive at the end, and killed then."""
    limit: str = ""
    """Which limit ended it: "timeout" | "memory" | "cpu" | "processes" | ""."""
    server: dict[str, ProxyStats] = field(default_factory=dict)
    """Per service name, what the server saw (counted at the proxy)."""
    seconds: float = 0.0
    """Wall time of the call (from the function's start to the process's end)."""


@dataclass
class WorkersRun:
    """N copies of the learner's function, released together."""

    runs: list[LearnerRun]
    server: dict[str, ProxyStats] = field(default_factory=dict)
    """Totals over all workers (they share the proxies)."""
    released: bool = False
    """All workers were ready and were released at once."""
    seconds: float = 0.0
    limit: str = ""
    killed: int = 0

    @property
    def ok(self) -> bool:
        """Every worker returned normally."""
        return bool(self.runs) and all(run.ok for run in self.runs)
