"""Reading the learner's SQL: named queries, parsed with sqlglot (never regexes over SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdtutor.lab.results import Evidence


@dataclass(frozen=True)
class NamedQuery:
    """A query from a workspace SQL file, introduced by `-- name: NAME`."""

    name: str
    sql: str
    line: int


def named_queries(text: str) -> dict[str, NamedQuery]:
    """Split a SQL file at its `-- name:` comments."""
    queries: dict[str, NamedQuery] = {}
    name: str | None = None
    start = 0
    body: list[str] = []

    def flush() -> None:
        if name is not None:
            queries[name] = NamedQuery(name, "\n".join(body).strip(), start)

    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("-- name:"):
            flush()
            name, start, body = line.split(":", 1)[1].strip(), number + 1, []
        elif not line.strip().startswith("--"):
            body.append(line)
    flush()
    return queries


class SqlProblem(Exception):
    """The learner's SQL could not be parsed; the message says where."""


def parse_select(query: NamedQuery, filename: str) -> Any:
    """Parse one SELECT with sqlglot's PostgreSQL dialect."""
    import sqlglot  # costly import: only for checks that read SQL
    from sqlglot import exp

    statement = query.sql.rstrip().rstrip(";")
    try:
        trees = sqlglot.parse(statement, read="postgres")
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line = query.line + int(first.get("line", 1)) - 1
        raise SqlProblem(
            f"{filename}:{line}: the query '{query.name}' does not parse: "
            f"{first.get('description', exc)}"
        ) from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        raise SqlProblem(
            f"{filename}:{query.line}: '{query.name}' should be a single SELECT statement."
        )
    return trees[0]


def to_psycopg(tree: Any) -> str:
    """The query as PostgreSQL SQL with :name placeholders turned into %(name)s."""
    return str(tree.sql(dialect="postgres"))


def placeholders(tree: Any) -> set[str]:
    """The :name parameters a query uses."""
    from sqlglot import exp

    return {str(p.name) for p in tree.find_all(exp.Placeholder)}


def sql_evidence(query: NamedQuery, title: str = "your query") -> Evidence:
    """A query as evidence."""
    return Evidence(title, "sql", query.sql)


__all__ = [
    "NamedQuery",
    "SqlProblem",
    "named_queries",
    "parse_select",
    "placeholders",
    "sql_evidence",
    "to_psycopg",
]
