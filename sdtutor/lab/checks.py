"""The helpers a lab's checks.py is written with.

A check is a function decorated with `@check("id")` that takes a CheckContext. It
returns a message when the learner's work passes, and raises `Fail(message, evidence…)`
when it does not. Messages say what was seen and what to try next; evidence is what the
service itself showed (a plan, the index catalog, buffers read).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdtutor.content.models import LabSpec
from sdtutor.errors import LabError
from sdtutor.lab.results import CheckResult, Evidence
from sdtutor.lab.sandbox import LearnerRun, run_function

CheckFunction = Callable[["CheckContext"], "str | tuple[str, list[Evidence]]"]
_REGISTERING: dict[str, CheckFunction] | None = None


class Fail(Exception):
    """Raised by a check that does not pass: what was seen and what to try."""

    def __init__(self, message: str, *evidence: Evidence) -> None:
        super().__init__(message)
        self.message = message
        self.evidence = evidence


class CannotCheck(Exception):
    """Raised when a check cannot run at all (the service is down, say)."""


def check(check_id: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register a function as the check with this id (as named in lab.yaml)."""

    def register(fn: CheckFunction) -> CheckFunction:
        if _REGISTERING is not None:
            _REGISTERING[check_id] = fn
        return fn

    return register


def load_checks(lab: LabSpec) -> dict[str, CheckFunction]:
    """Import a lab's checks.py and return its checks by id."""
    global _REGISTERING
    path = lab.checks_file
    if not path.is_file():
        raise LabError(f"{path} is missing.", "Every lab needs a checks.py.")
    name = f"sdtutor_lab_checks_{lab.topic.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LabError(f"{path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    registered: dict[str, CheckFunction] = {}
    _REGISTERING = registered
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        _REGISTERING = None
    return registered


# ---------------------------------------------------------------- PostgreSQL evidence


@dataclass
class Plan:
    """An executed query plan (EXPLAIN ANALYZE, BUFFERS, FORMAT JSON)."""

    sql: str
    root: dict[str, Any]

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

    def evidence(self, title: str) -> Evidence:
        """This plan as evidence for a check's report."""
        return Evidence(title, "plan", self.root)


@dataclass(frozen=True)
class IndexInfo:
    """One index, as the catalog (pg_index) describes it."""

    name: str
    table: str
    columns: tuple[str, ...]
    include: tuple[str, ...]
    predicate: str | None
    unique: bool
    primary: bool
    valid: bool
    size: int
    definition: str

    @property
    def leading(self) -> str | None:
        """The first key column (or expression)."""
        return self.columns[0] if self.columns else None


INDEX_QUERY = """
SELECT i.relname AS name,
       t.relname AS table,
       x.indnkeyatts AS nkeys,
       ARRAY(
           SELECT pg_get_indexdef(x.indexrelid, k, true)
           FROM generate_series(1, x.indnatts) AS k
           ORDER BY k
       ) AS cols,
       pg_get_expr(x.indpred, x.indrelid, true) AS predicate,
       x.indisunique AS is_unique,
       x.indisprimary AS is_primary,
       x.indisvalid AS is_valid,
       pg_relation_size(x.indexrelid) AS size,
       pg_get_indexdef(x.indexrelid) AS definition
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema() AND t.relname = %s
ORDER BY i.relname
"""


@dataclass
class CheckContext:
    """What a check can look at: the lab, the workspace and the lab's services."""

    lab: LabSpec
    workspace: Path
    urls: dict[str, str]
    _pg: Any = field(default=None, repr=False)

    # ------------------------------------------------------------ connections

    def pg(self) -> Any:
        """An autocommit psycopg connection to the lab's database, parallel plans off."""
        if self._pg is None or self._pg.closed:
            import psycopg  # costly import: only when a check needs it

            url = self.urls.get("postgres")
            if not url:
                raise CannotCheck("this lab has no PostgreSQL service")
            try:
                self._pg = psycopg.connect(url, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                raise CannotCheck(f"cannot reach the lab's PostgreSQL: {exc}") from None
            # Parallel plans vary with the machine's load; the checker wants stable shapes.
            self._pg.execute("SET max_parallel_workers_per_gather = 0")
        return self._pg

    def close(self) -> None:
        """Close what the checks opened."""
        if self._pg is not None and not self._pg.closed:
            self._pg.close()

    def analyze(self, *tables: str) -> None:
        """VACUUM ANALYZE tables, so plans reflect the learner's latest DDL."""
        from psycopg import sql

        for table in tables:
            self.pg().execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))

    def explain(self, query: str, params: Any = None) -> Plan:
        """Run a query under EXPLAIN (ANALYZE, BUFFERS) and return its plan."""
        row = (
            self.pg()
            .execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) " + query, params)
            .fetchone()
        )
        return Plan(query, row[0][0]["Plan"])

    def indexes(self, table: str) -> list[IndexInfo]:
        """The indexes on a table, from the catalog."""
        out = []
        for row in self.pg().execute(INDEX_QUERY, (table,)).fetchall():
            name, tbl, nkeys, cols, predicate, unique, primary, valid, size, definition = row
            out.append(
                IndexInfo(
                    name=name,
                    table=tbl,
                    columns=tuple(cols[:nkeys]),
                    include=tuple(cols[nkeys:]),
                    predicate=predicate,
                    unique=unique,
                    primary=primary,
                    valid=valid,
                    size=int(size),
                    definition=definition,
                )
            )
        return out

    def query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run a query on the lab's database and return all rows."""
        return list(self.pg().execute(query, params).fetchall())

    # ------------------------------------------------------------ workspace

    def read(self, name: str) -> str:
        """A workspace file's text; Fail with a clear message when it is missing."""
        path = self.workspace / name
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise Fail(
                f"{name} is missing from your workspace ({self.workspace}).",
                Evidence(
                    "what to do", "text", "Run `sdtutor lab reset` to get the starting files back."
                ),
            ) from None

    def run_learner(
        self, file: str, function: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> LearnerRun:
        """Call the learner's function in a subprocess, connected to the lab's database."""
        return run_function(
            self.workspace,
            file,
            function,
            self.urls["postgres"],
            list(args),
            kwargs,
            timeout=timeout or self.lab.time_limit,
        )


def indexes_evidence(indexes: list[IndexInfo], title: str = "indexes found") -> Evidence:
    """The index catalog as evidence."""
    rows = [
        (
            ix.name,
            ", ".join(ix.columns),
            ", ".join(ix.include) or "",
            ix.predicate or "",
            f"{ix.size // 1024} kB",
        )
        for ix in indexes
    ]
    return Evidence(title, "table", (("index", "key columns", "include", "where", "size"), rows))


def run_checks(lab: LabSpec, workspace: Path, urls: dict[str, str]) -> list[CheckResult]:
    """Run every check a lab declares, in order; a crash in one never hides the others."""
    functions = load_checks(lab)
    ctx = CheckContext(lab, workspace, urls)
    results = []
    try:
        for spec in lab.checks:
            fn = functions.get(spec.id)
            if fn is None:
                results.append(
                    CheckResult(spec.id, spec.title, False, "checks.py has no check with this id")
                )
                continue
            try:
                outcome = fn(ctx)
                message, evidence = outcome if isinstance(outcome, tuple) else (outcome, [])
                results.append(CheckResult(spec.id, spec.title, True, message, tuple(evidence)))
            except Fail as failure:
                results.append(
                    CheckResult(spec.id, spec.title, False, failure.message, failure.evidence)
                )
            except CannotCheck as exc:
                raise LabError(
                    f"The check '{spec.id}' cannot run: {exc}",
                    "Is the lab running? `sdtutor lab info` shows its state; "
                    "`sdtutor lab start` starts it again.",
                ) from None
            except Exception as exc:  # the learner may have broken what a check relies on
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
                results.append(
                    CheckResult(
                        spec.id,
                        spec.title,
                        False,
                        f"This check could not finish: {reason}. If you changed the lab's "
                        f"tables or data, `sdtutor lab reset {lab.topic}` restores them "
                        "(your files are kept aside).",
                    )
                )
    finally:
        ctx.close()
    return results


__all__ = [
    "CannotCheck",
    "CheckContext",
    "Evidence",
    "Fail",
    "IndexInfo",
    "Plan",
    "check",
    "indexes_evidence",
    "load_checks",
    "run_checks",
]
