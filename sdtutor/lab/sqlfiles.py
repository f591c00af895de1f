"""Reading the learner's SQL: named queries, their :name parameters, and their parse tree.

The parse (sqlglot, never regexes over SQL) is for wording messages and for finding
parameters; whether a query is right is decided by running it on the real service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sdtutor.lab.results import Evidence

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class NamedQuery:
    """A query from a workspace SQL file, introduced by `-- name: NAME`."""

    name: str
    sql: str
    line: int  # the file's line number of the query's first code line
    file: str = ""
    source_lines: tuple[int, ...] = ()  # the file's line number of each line of `sql`

    def file_line(self, line_in_query: int) -> int:
        """The file's line number of a line of the query (1-based)."""
        if 1 <= line_in_query <= len(self.source_lines):
            return self.source_lines[line_in_query - 1]
        return self.line + line_in_query - 1


def named_queries(text: str, file: str = "") -> dict[str, NamedQuery]:
    """Split a SQL file at its `-- name:` comments (whole-line comments are dropped)."""
    queries: dict[str, NamedQuery] = {}
    name: str | None = None
    body: list[tuple[int, str]] = []

    def flush() -> None:
        if name is None:
            return
        while body and not body[-1][1].strip():
            body.pop()
        numbers = tuple(n for n, _ in body)
        sql = "\n".join(line for _, line in body)
        queries[name] = NamedQuery(name, sql.strip(), numbers[0] if numbers else 0, file, numbers)

    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("-- name:"):
            flush()
            name, body = line.split(":", 1)[1].strip(), []
        elif not line.strip().startswith("--") and (body or line.strip()):
            body.append((number, line))
    flush()
    return queries


class SqlProblem(Exception):
    """The learner's SQL could not be parsed; the message says where."""


def _placeholder_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every `:name` parameter, found with sqlglot's tokenizer.

    Quotes, comments and `::` casts are the tokenizer's business, so `':x'`, `-- :x` and
    `created_at::date` are not parameters; `:offset` is one although OFFSET is a keyword.
    """
    from sqlglot.dialects.postgres import Postgres
    from sqlglot.tokens import TokenType

    try:
        tokens = Postgres().tokenize(text)
    except Exception as exc:  # sqlglot raises TokenError on, e.g., an unclosed quote
        raise SqlProblem(f"cannot be read: {exc}") from None
    spans = []
    adjacent_before = {TokenType.VAR, TokenType.NUMBER, TokenType.R_PAREN, TokenType.R_BRACKET}
    for i, token in enumerate(tokens[:-1]):
        following = tokens[i + 1]
        if token.token_type != TokenType.COLON or following.start != token.end + 1:
            continue
        if not _WORD.match(following.text):
            continue
        before = tokens[i - 1] if i else None
        # arr[lo:hi] is a slice, not a parameter
        if (
            before is not None
            and before.end + 1 == token.start
            and before.token_type in adjacent_before
        ):
            continue
        spans.append((token.start, following.end + 1, following.text))
    return spans


def placeholder_names(text: str) -> set[str]:
    """The :name parameters a query's text uses."""
    return {name for _, _, name in _placeholder_spans(text)}


def bind_named(text: str) -> str:
    """The query for psycopg: `:name` becomes `%(name)s` and every other `%` is doubled."""
    out: list[str] = []
    position = 0
    for start, end, name in _placeholder_spans(text):
        out.append(text[position:start].replace("%", "%%"))
        out.append(f"%({name})s")
        position = end
    out.append(text[position:].replace("%", "%%"))
    return "".join(out)


def parse_query(query: NamedQuery, filename: str | None = None) -> Any:
    """Parse one query (SELECT, WITH …, UNION …) with sqlglot's PostgreSQL dialect."""
    import sqlglot  # costly import: only for checks that read SQL
    from sqlglot import exp

    filename = filename or query.file or "your SQL file"
    statement = query.sql.rstrip().rstrip(";")
    try:
        trees = sqlglot.parse(statement, read="postgres")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        errors = getattr(exc, "errors", None) or [{}]
        first = errors[0]
        line = query.file_line(int(first.get("line", 1)))
        raise SqlProblem(
            f"{filename}:{line}: the query '{query.name}' does not parse: "
            f"{first.get('description', exc)}"
        ) from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        raise SqlProblem(
            f"{filename}:{query.line}: '{query.name}' should be one query (a SELECT), "
            f"found {len(trees)} statement(s)."
        )
    return trees[0]


def parse_select(query: NamedQuery, filename: str) -> Any:
    """Parse one query; kept for labs written before parse_query."""
    return parse_query(query, filename)


@dataclass(frozen=True)
class OrderKey:
    """One ORDER BY key, resolved through aliases and ordinals (for wording messages)."""

    expression: str  # `created_at`, `o.created_at` → `created_at`; `2` → the 2nd column
    descending: bool

    def __str__(self) -> str:
        return f"{self.expression} {'DESC' if self.descending else 'ASC'}"


def order_keys(tree: Any) -> list[OrderKey]:
    """The outermost ORDER BY of a parsed query, with aliases and positions resolved."""
    from sqlglot import exp

    order = tree.args.get("order")
    if order is None:
        return []
    selects = list(getattr(tree, "selects", []) or [])
    by_alias = {s.alias: s.unalias() for s in selects if isinstance(s, exp.Alias)}
    keys = []
    for item in order.expressions:
        target = item.this
        if isinstance(target, exp.Literal) and not target.is_string:
            position = int(target.this)
            if 1 <= position <= len(selects):
                target = selects[position - 1].unalias()
        elif isinstance(target, exp.Column) and not target.table and target.name in by_alias:
            target = by_alias[target.name]
        while isinstance(target, exp.Cast | exp.Paren):
            target = target.this
        text = target.name if isinstance(target, exp.Column) else target.sql(dialect="postgres")
        keys.append(OrderKey(text, bool(item.args.get("desc"))))
    return keys


def to_psycopg(tree: Any) -> str:
    """A parsed query regenerated as PostgreSQL SQL with :name turned into %(name)s."""
    return str(tree.sql(dialect="postgres"))


def placeholders(tree: Any) -> set[str]:
    """The :name parameters of a parsed query."""
    from sqlglot import exp

    return {str(p.name) for p in tree.find_all(exp.Placeholder)}


def sql_evidence(query: NamedQuery, title: str = "your query") -> Evidence:
    """A query as evidence."""
    return Evidence(title, "sql", query.sql)


__all__ = [
    "NamedQuery",
    "OrderKey",
    "SqlProblem",
    "bind_named",
    "named_queries",
    "order_keys",
    "parse_query",
    "parse_select",
    "placeholder_names",
    "placeholders",
    "sql_evidence",
    "to_psycopg",
]
