"""The helpers a lab's checks.py is written with.

A check is a function decorated with `@check("id")` that takes a CheckContext. It
passes by returning a message (or `Pass(message, *evidence)`, returned or raised) and
fails by raising `Fail(message, *evidence)`. Messages say what was seen and what to try
next; evidence is what the service itself showed (a plan, the index catalog, keys and
their TTLs, a queue's declaration), and the assertion helpers attach it themselves:

    @check("latest-orders")
    def latest_orders(ctx: CheckContext) -> Pass:
        plan = ctx.plan(LATEST, (42,), title="plan for user 42")
        plan.must_use_index(ctx.indexes("orders").leading_with("user_id"), why="...")
        plan.must_not_sort(why="...").buffers_at_most(40, why="...")
        return Pass(f"{plan.used_index()} serves it: {plan.buffers} buffers.", plan.evidence())

Checker connections carry statement and lock timeouts: a check blocked by another
session fails within seconds and names it. `run_checks` runs a lab's checks within one
deadline.
"""

from sdtutor.lab.checks.broker import Declaration, ExchangeFacts, Mismatch, QueueFacts
from sdtutor.lab.checks.catalog import Indexes, IndexInfo, indexes_evidence
from sdtutor.lab.checks.context import (
    LOCK_TIMEOUT,
    STATEMENT_TIMEOUT,
    CheckContext,
    statements_evidence,
)
from sdtutor.lab.checks.keys import NO_EXPIRY, KeyInfo, Keys
from sdtutor.lab.checks.outcome import Blocked, CannotCheck, Fail, OutOfTime, Pass
from sdtutor.lab.checks.pglocks import APPLICATION_NAME
from sdtutor.lab.checks.plans import Plan
from sdtutor.lab.checks.queries import LearnerQuery, QueryFile
from sdtutor.lab.checks.registry import CheckFunction, check, load_checks
from sdtutor.lab.checks.run import default_deadline, run_checks
from sdtutor.lab.results import Evidence

__all__ = [
    "APPLICATION_NAME",
    "LOCK_TIMEOUT",
    "NO_EXPIRY",
    "STATEMENT_TIMEOUT",
    "Blocked",
    "CannotCheck",
    "CheckContext",
    "CheckFunction",
    "Declaration",
    "Evidence",
    "ExchangeFacts",
    "Fail",
    "IndexInfo",
    "Indexes",
    "KeyInfo",
    "Keys",
    "LearnerQuery",
    "Mismatch",
    "OutOfTime",
    "Pass",
    "Plan",
    "QueryFile",
    "QueueFacts",
    "check",
    "default_deadline",
    "indexes_evidence",
    "load_checks",
    "run_checks",
    "statements_evidence",
]
