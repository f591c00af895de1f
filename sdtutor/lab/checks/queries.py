"""Named queries from a workspace SQL file, as a check uses them.

`ctx.queries("queries.sql")["next_page"]` is the query under `-- name: next_page` (a
Fail when the marker is missing); `.params` its :name parameters, `.tree` its parse
(a Fail naming file and line when it does not parse), and `ctx.fetch(query, params)` /
`ctx.plan(query, params)` run it, a refusal by PostgreSQL being a Fail too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sdtutor.lab.checks.outcome import Fail
from sdtutor.lab.results import Evidence
from sdtutor.lab.sqlfiles import (
    NamedQuery,
    OrderKey,
    SqlProblem,
    bind_named,
    named_queries,
    order_keys,
    parse_query,
    placeholder_names,
)


@dataclass
class LearnerQuery:
    """One named query of the learner's: its text, parameters and (parsed) shape."""

    query: NamedQuery
    file: str
    _tree: Any = field(default=None, repr=False)
    _problem: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The name after `-- name:`."""
        return self.query.name

    @property
    def sql(self) -> str:
        """The query's text as the learner wrote it (whole-line comments dropped)."""
        return self.query.sql

    @property
    def line(self) -> int:
        """The file's line number of the query's first line."""
        return self.query.line

    @property
    def params(self) -> set[str]:
        """The :name parameters it uses; Fail when the text cannot be read at all."""
        try:
            return placeholder_names(self.sql)
        except SqlProblem as exc:
            raise Fail(f"{self.file}:{self.line}: '{self.name}' {exc}", self.evidence()) from None

    @property
    def psycopg_sql(self) -> str:
        """The text with :name turned into psycopg's %(name)s."""
        try:
            return bind_named(self.sql)
        except SqlProblem as exc:
            raise Fail(f"{self.file}:{self.line}: '{self.name}' {exc}", self.evidence()) from None

    @property
    def tree(self) -> Any:
        """The sqlglot parse tree; Fail, naming file and line, when it does not parse."""
        found = self.try_tree()
        if found is None:
            raise Fail(str(self._problem), self.evidence())
        return found

    def try_tree(self) -> Any | None:
        """The parse tree, or None when sqlglot cannot parse it (PostgreSQL may still)."""
        if self._tree is None and self._problem is None:
            try:
                self._tree = parse_query(self.query, self.file)
            except SqlProblem as exc:
                self._problem = str(exc)
        return self._tree

    def order_keys(self) -> list[OrderKey]:
        """Its outer ORDER BY, aliases and positions resolved; [] when unparseable."""
        tree = self.try_tree()
        return order_keys(tree) if tree is not None else []

    def has(self, *node_types: str) -> bool:
        """Whether its parse tree has any of these sqlglot node types ('Or', 'Offset', …)."""
        from sqlglot import exp

        tree = self.try_tree()
        if tree is None:
            return False
        kinds = tuple(getattr(exp, t) for t in node_types)
        return any(True for _ in tree.find_all(*kinds))

    def evidence(self, title: str | None = None) -> Evidence:
        """The query as evidence."""
        return Evidence(title or f"your {self.name}", "sql", self.sql)

    def file_line(self, position: int | None) -> int:
        """The file's line for a 1-based character position in the query (PostgreSQL's)."""
        if not position:
            return self.line
        return self.query.file_line(self.sql.count("\n", 0, position - 1) + 1)


class QueryFile(Mapping[str, LearnerQuery]):
    """The named queries of one workspace SQL file."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self._queries = {
            name: LearnerQuery(q, file) for name, q in named_queries(text, file).items()
        }

    def __getitem__(self, name: str) -> LearnerQuery:
        found = self._queries.get(name)
        if found is None:
            have = ", ".join(self._queries) or "none"
            raise Fail(
                f"{self.file} has no query marked `-- name: {name}` (it has: {have}). Keep "
                f"the marker line above your query so the checker can find it."
            )
        return found

    def get(self, name: str, default: Any = None) -> Any:
        """The named query, or `default` when the file has none by that name."""
        return self._queries.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)


__all__ = ["LearnerQuery", "QueryFile"]
