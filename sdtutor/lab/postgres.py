"""A lab's own database on a PostgreSQL server: create, seed, drop, and run SQL files.

Labs isolate themselves: the database is `sdtutor_<slug>` and nothing outside it is
touched. Identifiers are always quoted with psycopg.sql.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sdtutor.errors import LabError, ProviderError
from sdtutor.providers.external import redact

SEEDED_COMMENT = "sdtutor lab database (seeded)"


def database_name(slug: str) -> str:
    """The lab's database: sdtutor_<slug>, with dashes as underscores."""
    return "sdtutor_" + slug.replace("-", "_")


def with_database(url: str, dbname: str) -> str:
    """The same server URL, pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def connect(url: str, **kwargs: Any) -> Any:
    """Connect, turning 'cannot reach' into a ProviderError that says what to do."""
    import psycopg  # costly import: only in commands that talk to PostgreSQL

    try:
        return psycopg.connect(url, connect_timeout=5, **kwargs)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no answer"
        raise ProviderError(
            f"Cannot reach PostgreSQL at {redact(url)}: {reason}",
            "Start the server (or the lab: `sdtutor lab start TOPIC`), or fix the URL "
            "(SDTUTOR_POSTGRES_URL for the external provider). `sdtutor doctor` helps.",
        ) from None


@contextlib.contextmanager
def admin(url: str) -> Iterator[Any]:
    """An autocommit connection to the server's maintenance database."""
    conn = connect(url, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def database_state(url: str, dbname: str) -> str:
    """'missing', 'partial' (exists, seed unfinished) or 'seeded'."""
    with admin(url) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (dbname,),
        ).fetchone()
    if row is None:
        return "missing"
    return "seeded" if row[0] == SEEDED_COMMENT else "partial"


def create_database(url: str, dbname: str) -> None:
    """Create the lab's database (dropping a half-made one of the same name first)."""
    import psycopg
    from psycopg import sql

    with admin(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.errors.InsufficientPrivilege:
            raise ProviderError(
                f"The PostgreSQL user in {redact(url)} may not create databases.",
                "Give it CREATEDB (ALTER ROLE name CREATEDB), or use a user that has it.",
            ) from None


def mark_seeded(url: str, dbname: str) -> None:
    """Record on the database itself that its seed finished."""
    from psycopg import sql

    with admin(url) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(dbname), sql.Literal(SEEDED_COMMENT)
            )
        )


def drop_database(url: str, dbname: str) -> None:
    """Drop the lab's database, ending its sessions."""
    from psycopg import sql

    with admin(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


@dataclass(frozen=True)
class SqlStep:
    """A part of a SQL file, introduced by a `-- step: description` comment."""

    description: str
    sql: str
    line: int


def sql_steps(path: Path) -> list[SqlStep]:
    """Split a setup file at its `-- step:` comments (the whole file is one step without)."""
    steps: list[SqlStep] = []
    description, start = f"Running {path.name}", 1
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("-- step:"):
            if _has_code("\n".join(body)):
                steps.append(SqlStep(description, "\n".join(body), start))
            description, start, body = line[len("-- step:") :].strip(), number, []
        else:
            body.append(line)
    if _has_code("\n".join(body)):
        steps.append(SqlStep(description, "\n".join(body), start))
    return steps


def split_statements(text: str) -> list[str]:
    """Split SQL text into statements at top-level semicolons (sqlglot's tokenizer knows
    quotes, dollar quotes and comments), keeping each statement's original text."""
    from sqlglot.dialects.postgres import Postgres
    from sqlglot.tokens import TokenType

    statements, start = [], 0
    for token in Postgres().tokenize(text):
        if token.token_type == TokenType.SEMICOLON:
            statements.append(text[start : token.start])
            start = token.end + 1
    statements.append(text[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


def run_setup(
    url: str, path: Path, progress: Callable[[str, float | None], None] | None = None
) -> None:
    """Run a lab's setup file, one `-- step:` at a time, reporting progress.

    Each step goes to the server as one batch (one round trip, no parsing here). A
    statement that refuses a transaction block (VACUUM, CREATE INDEX CONCURRENTLY)
    must therefore be alone in its step. Raises LabError naming the file and the step's
    line when PostgreSQL refuses it.
    """
    import psycopg

    steps = sql_steps(path)
    with connect(url, autocommit=True) as conn:
        # A bulk load is a few big one-shot statements: JIT compilation only adds time,
        # and sorts and index builds run faster in memory. This session only.
        conn.execute("SET jit = off; SET work_mem = '64MB'; SET maintenance_work_mem = '256MB'")
        for done, step in enumerate(steps):
            if progress:
                progress(step.description, done / max(len(steps), 1))
            try:
                conn.execute(step.sql.encode())
            except psycopg.Error as exc:
                raise LabError(
                    f"{path}:{step.line}: PostgreSQL refused '{step.description}': "
                    f"{str(exc).strip().splitlines()[0]}",
                    "Fix the SQL in that step (a VACUUM must be alone in its step).",
                ) from None
        if progress:
            progress("Done", 1.0)


class StatementRefused(LabError):
    """PostgreSQL refused a statement of a learner's SQL file; the message names file:line."""


def run_statements(url: str, path: Path) -> Iterator[tuple[int, Any]]:
    """Run a learner's SQL file statement by statement, as `lab shell -f` does.

    Yields (line, cursor) after each statement. Raises LabError when the file is missing,
    and StatementRefused, naming file and line, at the first statement PostgreSQL refuses.
    """
    import psycopg

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabError(f"There is no file {path}.", "Give the path to a .sql file.") from None
    with connect(url, autocommit=True) as conn:
        offset = 0
        for statement in split_statements(text):
            offset = max(text.find(statement, offset), 0)
            # The statement's text starts with any comment above it; name its first code line.
            lead = next(
                i
                for i, row in enumerate(statement.splitlines())
                if row.strip() and not row.strip().startswith("--")
            )
            line = text.count("\n", 0, offset) + 1 + lead
            try:
                cur = conn.execute(statement.encode())
            except psycopg.Error as exc:
                raise StatementRefused(f"{path.name}:{line}: {str(exc).strip()}") from None
            yield line, cur


__all__ = [
    "SEEDED_COMMENT",
    "SqlStep",
    "StatementRefused",
    "admin",
    "connect",
    "create_database",
    "database_name",
    "database_state",
    "drop_database",
    "mark_seeded",
    "run_setup",
    "run_statements",
    "split_statements",
    "sql_steps",
    "with_database",
]
