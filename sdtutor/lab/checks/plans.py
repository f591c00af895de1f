"""Executed query plans, and assertions over them that fail with the plan as evidence.

    plan = ctx.plan(LATEST, (42,), title="plan for user 42")
    plan.must_use_index(serving, why="...").must_not_sort(why="...").buffers_at_most(40, why="...")

The wording (`why`) is the lab's; the evidence (this plan, plus the index catalog of every
table it reads) is attached automatically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sdtutor.lab.checks.catalog import IndexInfo
from sdtutor.lab.checks.outcome import Fail
from sdtutor.lab.results import Evidence

SORTS = ("Sort", "Incremental Sort")
SCANS = (
    "Seq Scan",
    "Index Scan",
    "Index Only Scan",
    "Bitmap Heap Scan",
    "Tid Scan",
    "Tid Range Scan",
)

IndexRef = str | IndexInfo


def _names(indexes: IndexRef | Iterable[IndexRef]) -> set[str]:
    if isinstance(indexes, str | IndexInfo):
        indexes = [indexes]
    return {ix.name if isinstance(ix, IndexInfo) else ix for ix in indexes}


@dataclass
class Plan:
    """An executed query plan (EXPLAIN ANALYZE, BUFFERS, FORMAT JSON)."""

    sql: str
    root: dict[str, Any]
    title: str = "query plan"
    context: tuple[Evidence, ...] = ()  # more evidence for any failure (the query, say)
    catalog: Callable[[set[str]], list[Evidence]] | None = field(default=None, repr=False)

    # ------------------------------------------------------------ facts

    def nodes(self) -> Iterator[dict[str, Any]]:
        """Every node, depth first."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.get("Plans", [])))

    def has(self, *node_types: str) -> bool:
        """Whether any node is one of these types (e.g. 'Sort', 'Seq Scan')."""
        return any(n.get("Node Type") in node_types for n in self.nodes())

    def index_names(self) -> set[str]:
        """The indexes the plan reads."""
        return {str(n["Index Name"]) for n in self.nodes() if "Index Name" in n}

    def used_index(self, among: IndexRef | Iterable[IndexRef] | None = None) -> str | None:
        """The (first, by name) index the plan reads, optionally only among these."""
        used = self.index_names()
        if among is not None:
            used &= _names(among)
        return min(used) if used else None

    def tables(self) -> set[str]:
        """The tables the plan reads."""
        return {str(n["Relation Name"]) for n in self.nodes() if "Relation Name" in n}

    @property
    def sorts(self) -> bool:
        """Whether the plan sorts rows itself (Sort or Incremental Sort)."""
        return self.has(*SORTS)

    @property
    def buffers(self) -> int:
        """Shared buffers hit or read by the whole query."""
        return int(self.root.get("Shared Hit Blocks", 0)) + int(
            self.root.get("Shared Read Blocks", 0)
        )

    @property
    def rows(self) -> int:
        """Rows the query returned."""
        return int(self.root.get("Actual Rows", 0))

    @property
    def rows_scanned(self) -> int:
        """Rows the scans produced or threw away (filter and recheck), over every loop."""
        total = 0
        for node in self.nodes():
            if node.get("Node Type") in SCANS:
                per_loop = (
                    float(node.get("Actual Rows", 0))
                    + float(node.get("Rows Removed by Filter", 0))
                    + float(node.get("Rows Removed by Index Recheck", 0))
                )
                total += round(per_loop * float(node.get("Actual Loops", 1)))
        return total

    def evidence(self, title: str | None = None) -> Evidence:
        """This plan as evidence for a check's report."""
        return Evidence(title or self.title, "plan", self.root)

    # ------------------------------------------------------------ assertions

    def fail(self, why: str, *more: Evidence) -> NoReturn:
        """Raise Fail with this plan, the extra evidence and the tables' index catalog."""
        catalog = self.catalog(self.tables()) if self.catalog else []
        raise Fail(why, self.evidence(), *more, *self.context, *catalog)

    def must_use_index(self, indexes: IndexRef | Iterable[IndexRef], why: str) -> Plan:
        """Fail unless the plan reads one of these indexes (names or IndexInfo)."""
        if not self.index_names() & _names(indexes):
            self.fail(why)
        return self

    def must_use_an_index(self, why: str) -> Plan:
        """Fail when the plan reads no index at all."""
        if not self.index_names():
            self.fail(why)
        return self

    def must_not_sort(self, why: str) -> Plan:
        """Fail when the plan has a Sort or Incremental Sort node."""
        if self.sorts:
            self.fail(why)
        return self

    def must_not_seq_scan(self, why: str) -> Plan:
        """Fail when the plan reads a whole table (a Seq Scan node)."""
        if self.has("Seq Scan"):
            self.fail(why)
        return self

    def buffers_at_most(self, limit: int, why: str) -> Plan:
        """Fail when the query read more than `limit` shared buffers (8 kB pages)."""
        if self.buffers > limit:
            self.fail(why)
        return self

    def rows_scanned_at_most(self, limit: int, why: str) -> Plan:
        """Fail when the scans produced or discarded more than `limit` rows."""
        if self.rows_scanned > limit:
            self.fail(why)
        return self


__all__ = ["SCANS", "SORTS", "Plan"]
