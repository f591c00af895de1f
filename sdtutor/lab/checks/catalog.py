"""The index catalog (pg_index) as facts a check can read and assert on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdtutor.lab.checks.outcome import Fail
from sdtutor.lab.results import Evidence

if TYPE_CHECKING:
    from sdtutor.lab.checks.plans import Plan


@dataclass(frozen=True)
class IndexInfo:
    """One index, as the catalog (pg_index) describes it."""

    name: str
    table: str
    columns: tuple[str, ...]  # key columns or expressions, in order
    include: tuple[str, ...]  # INCLUDE (…) columns
    predicate: str | None  # WHERE of a partial index, as PostgreSQL prints it
    unique: bool
    primary: bool
    valid: bool
    size: int  # bytes
    definition: str
    descending: tuple[bool, ...] = ()  # per key column: DESC?

    @property
    def leading(self) -> str | None:
        """The first key column (or expression)."""
        return self.columns[0] if self.columns else None

    @property
    def partial(self) -> bool:
        """Whether the index holds only the rows of its WHERE."""
        return self.predicate is not None

    def starts_with(self, *columns: str) -> bool:
        """Whether the key begins with these columns, in this order (ASC or DESC alike)."""
        return self.columns[: len(columns)] == columns

    def describe(self) -> str:
        """`name on (a, b DESC) INCLUDE (c) WHERE …`, for messages."""
        keys = ", ".join(
            c + (" DESC" if i < len(self.descending) and self.descending[i] else "")
            for i, c in enumerate(self.columns)
        )
        text = f"{self.name} on ({keys})"
        if self.include:
            text += f" INCLUDE ({', '.join(self.include)})"
        if self.predicate:
            text += f" WHERE {self.predicate}"
        return text


class Indexes(list[IndexInfo]):
    """The indexes of a table, with filters and the catalog as evidence."""

    def valid(self) -> Indexes:
        """Those PostgreSQL may use (not left INVALID by a failed CONCURRENTLY build)."""
        return Indexes(ix for ix in self if ix.valid)

    def invalid(self) -> Indexes:
        """Those left INVALID by a failed CREATE INDEX CONCURRENTLY."""
        return Indexes(ix for ix in self if not ix.valid)

    def leading_with(self, *columns: str) -> Indexes:
        """Those whose key begins with these columns."""
        return Indexes(ix for ix in self if ix.starts_with(*columns))

    def containing(self, column: str) -> Indexes:
        """Those with this column anywhere in the key."""
        return Indexes(ix for ix in self if column in ix.columns)

    def partial(self) -> Indexes:
        """The partial indexes (with a WHERE)."""
        return Indexes(ix for ix in self if ix.partial)

    def full(self) -> Indexes:
        """The indexes over every row (no WHERE)."""
        return Indexes(ix for ix in self if not ix.partial)

    def named(self, names: Iterable[str]) -> Indexes:
        """Those with one of these names."""
        wanted = set(names)
        return Indexes(ix for ix in self if ix.name in wanted)

    def used_by(self, plan: Plan) -> IndexInfo | None:
        """The first of these indexes (by name) that the plan reads, if any."""
        used = plan.index_names()
        return next((ix for ix in sorted(self, key=lambda i: i.name) if ix.name in used), None)

    @property
    def names(self) -> list[str]:
        """Their names, in catalog order."""
        return [ix.name for ix in self]

    @property
    def primary_key(self) -> IndexInfo | None:
        """The primary key's index, if the table has one."""
        return next((ix for ix in self if ix.primary), None)

    def evidence(self, title: str = "indexes found") -> Evidence:
        """The catalog as evidence."""
        return indexes_evidence(list(self), title)

    def must_all_be_valid(self, why: str) -> Indexes:
        """Fail (with the invalid ones as evidence) when any index is INVALID."""
        bad = self.invalid()
        if bad:
            raise Fail(why, bad.evidence("invalid indexes"))
        return self


def indexes_evidence(indexes: list[IndexInfo], title: str = "indexes found") -> Evidence:
    """The index catalog as evidence."""
    rows = [
        (
            ix.name,
            ", ".join(
                c + (" DESC" if i < len(ix.descending) and ix.descending[i] else "")
                for i, c in enumerate(ix.columns)
            ),
            ", ".join(ix.include) or "",
            ix.predicate or "",
            f"{ix.size // 1024} kB",
        )
        for ix in indexes
    ]
    return Evidence(title, "table", (("index", "key columns", "include", "where", "size"), rows))


INDEX_QUERY = """
SELECT i.relname AS name,
       t.relname AS table,
       x.indnkeyatts AS nkeys,
       ARRAY(
           SELECT pg_get_indexdef(x.indexrelid, k, true)
           FROM generate_series(1, x.indnatts) AS k
           ORDER BY k
       ) AS cols,
       ARRAY(
           SELECT (x.indoption[k - 1] & 1) = 1
           FROM generate_series(1, x.indnkeyatts) AS k
           ORDER BY k
       ) AS descending,
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


def index_from_row(row: tuple[object, ...]) -> IndexInfo:
    """One row of INDEX_QUERY as an IndexInfo."""
    name, tbl, nkeys, cols, descending, predicate, unique, primary, valid, size, definition = row
    keys = int(nkeys)  # type: ignore[call-overload]
    columns = list(cols)  # type: ignore[call-overload]
    return IndexInfo(
        name=str(name),
        table=str(tbl),
        columns=tuple(columns[:keys]),
        include=tuple(columns[keys:]),
        predicate=None if predicate is None else str(predicate),
        unique=bool(unique),
        primary=bool(primary),
        valid=bool(valid),
        size=int(size),  # type: ignore[call-overload]
        definition=str(definition),
        descending=tuple(bool(d) for d in descending),  # type: ignore[attr-defined]
    )


__all__ = ["INDEX_QUERY", "IndexInfo", "Indexes", "index_from_row", "indexes_evidence"]
