"""The PostgreSQL service kind, and running SQL files on a lab's database.

A lab's namespace on a server is a login role `sdtutor_<home>_<slug>` (not a superuser)
owning a database of the same name, copied from a seeded template `..._tpl` that the
role also owns: seeding runs once, and `lab reset` or a start after `lab stop` is a
copy (0.1-0.3 s for the indexing lab's 28 MB). Each carries a comment, the marker that
says which home made it; nothing is dropped without it.

The kind's own statements (roles, markers, copies) go through `libpq.session`, which
skips psycopg's ~100 ms import and quotes identifiers and literals with libpq; seeding,
learner files and shells use psycopg.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sdtutor.errors import LabError, ProviderError
from sdtutor.providers.base import Progress, no_progress
from sdtutor.providers.external import redact
from sdtutor.services.base import Access, ServiceKind, Target, refuse_foreign, url_with_login
from sdtutor.services.names import Names

if TYPE_CHECKING:
    from sdtutor.services.libpq import Session


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
def admin(url: str) -> Iterator[Session]:
    """An autocommit session for the CLI's own statements (no psycopg import: fast)."""
    from sdtutor.services.libpq import session

    with session(url) as s:
        yield s


def create_database(url: str, dbname: str, template: str | None = None) -> None:
    """Create a database (dropping one of the same name first): for tests and proofs,
    which use names of their own. Labs go through PostgresKind, which checks markers."""

    with admin(url) as s:
        _drop(s, dbname)
        _create(s, url, dbname, None, template)


def drop_database(url: str, dbname: str) -> None:
    """Drop a database, ending its sessions (tests and proofs: names of their own)."""
    with admin(url) as s:
        _drop(s, dbname)


def _drop(s: Session, dbname: str) -> None:
    s.run(f"DROP DATABASE IF EXISTS {s.ident(dbname)} WITH (FORCE)")


def _create(s: Session, url: str, dbname: str, owner: str | None, template: str | None) -> None:
    from sdtutor.services.libpq import PgError

    query = f"CREATE DATABASE {s.ident(dbname)}"
    if owner:
        query += f" OWNER {s.ident(owner)}"
    if template:
        query += f" TEMPLATE {s.ident(template)}"
        # PostgreSQL 15 copies by writing every page to the WAL too. Where nothing is
        # synced to disk anyway (fsync off: a private lab server), copying the files
        # writes half as much (~30% quicker here); on a server that syncs, its two
        # checkpoints would cost every other user of the server.
        if (
            s.value(
                "SELECT current_setting('server_version_num')::int >= 150000 "
                "AND NOT current_setting('fsync')::bool"
            )
            == "t"
        ):
            query += " STRATEGY FILE_COPY"
    try:
        s.run(query)
    except PgError as exc:
        if exc.sqlstate != "42501":  # insufficient_privilege
            raise
        raise ProviderError(
            f"The PostgreSQL user in {redact(url)} may not create databases.",
            "Give it CREATEDB and CREATEROLE (ALTER ROLE name CREATEDB CREATEROLE), or use a "
            "user that has them.",
        ) from None


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


def _marker(s: Session, dbname: str) -> str | None:
    """The comment on a database (its marker), '' when it has none, None when missing."""
    found = s.rows(
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
        "WHERE datname = $1",
        dbname,
    )
    return str(found[0][0]) if found else None


def _role_marker(s: Session, role: str) -> str | None:
    """The comment on a role (its marker), '' when it has none, None when missing."""
    found = s.rows(
        "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1",
        role,
    )
    return str(found[0][0]) if found else None


def _set_marker(s: Session, what: str, name: str, text: str) -> None:
    s.run(f"COMMENT ON {what} {s.ident(name)} IS {s.literal(text)}")


class PostgresKind(ServiceKind):
    """PostgreSQL: a lab role owning a database copied from a seeded template."""

    name = "postgres"
    title = "PostgreSQL"
    url_variable = "SDTUTOR_POSTGRES_URL"
    learner_env = "DATABASE_URL"
    shell_blurb = "a SQL prompt on the lab's database"
    suffixes = (".sql",)
    keeps_template = True

    def probe(self, url: str) -> bool:
        """Whether `SELECT 1` answers; never raises."""
        try:
            with admin(url) as s:
                return s.value("SELECT 1") == "1"
        except Exception:
            return False

    def provision(self, target: Target, fresh: bool, progress: Progress = no_progress) -> Access:
        """Role, seeded template (once), and the lab's database copied from it."""
        names, url = target.names, target.admin_url
        with admin(url) as s:
            password = self._ensure_role(s, names, target.handle.get("password"))
            template_marker = _marker(s, names.template)
            refuse_foreign(names, f"PostgreSQL database {names.template}", template_marker)
            if template_marker != names.marker("seeded"):
                if template_marker is not None:
                    _drop(s, names.template)
                progress(f"Creating database {names.template} (seeded once)", None)
                _create(s, url, names.template, names.role, None)
                self._private(s, names.template, names.role)
                _set_marker(s, "DATABASE", names.template, names.marker("seeding"))
                if target.setup is not None:
                    # As the lab's role, so it owns every table the learner must index.
                    seed_url = url_with_login(url, names.role, password, "/" + names.template)
                    run_setup(seed_url, target.setup, progress)
                _set_marker(s, "DATABASE", names.template, names.marker("seeded"))
                fresh = True
            marker = _marker(s, names.database)
            refuse_foreign(names, f"PostgreSQL database {names.database}", marker)
            if fresh or marker != names.marker("ready"):
                progress(f"Copying the seeded data into {names.database}", None)
                if marker is not None:
                    _drop(s, names.database)
                _create(s, url, names.database, names.role, names.template)
                self._private(s, names.database, names.role)
                _set_marker(s, "DATABASE", names.database, names.marker("ready"))
        return Access(url_with_login(url, names.role, password, "/" + names.database))

    @staticmethod
    def _ensure_role(s: Session, names: Names, password: str | None) -> str:
        """The lab's login role (not a superuser), made if missing; returns its password."""
        marker = _role_marker(s, names.role)
        refuse_foreign(names, f"PostgreSQL role {names.role}", marker)
        password = password or secrets.token_urlsafe(18)
        verb = "CREATE" if marker is None else "ALTER"
        s.run(
            f"{verb} ROLE {s.ident(names.role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"NOREPLICATION NOBYPASSRLS PASSWORD {s.password(password, names.role)}"
        )
        _set_marker(s, "ROLE", names.role, names.marker())
        return password

    @staticmethod
    def _private(s: Session, dbname: str, role: str) -> None:
        """Only the lab's role (and admins) may connect: other students share the server."""
        s.run(f"REVOKE ALL ON DATABASE {s.ident(dbname)} FROM PUBLIC")
        s.run(f"GRANT CONNECT, TEMPORARY ON DATABASE {s.ident(dbname)} TO {s.ident(role)}")

    def teardown(self, target: Target, purge: bool = False) -> None:
        """Drop the lab's database (and with `purge` its template and role), marker first."""
        names = target.names
        with admin(target.admin_url) as s:
            for dbname in (names.database, names.template):
                marker = _marker(s, dbname)
                refuse_foreign(names, f"PostgreSQL database {dbname}", marker)
                # A half-seeded template (Ctrl-C, a failed seed) is never worth keeping.
                keep = dbname == names.template and marker == names.marker("seeded")
                if marker is not None and (purge or not keep):
                    _drop(s, dbname)
            if purge:
                marker = _role_marker(s, names.role)
                if marker is not None and names.owns(marker):
                    s.run(f"DROP ROLE {s.ident(names.role)}")

    def await_replica(self, primary_url: str, replica_url: str, timeout: float) -> None:
        """Poll the replica's replay position (measured on the replica, where an apply
        delay shows) until it reaches the primary's current WAL position."""
        import time

        with admin(primary_url) as s:
            target = str(s.value("SELECT pg_current_wal_lsn()"))
        deadline = time.monotonic() + timeout
        with admin(replica_url) as s:
            while True:
                if s.value("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target) == "t":
                    return
                if time.monotonic() > deadline:
                    raise ProviderError(
                        f"The replica did not catch up with its primary within {timeout:g} s.",
                        "Its server log says why; `sdtutor lab stop` and start again.",
                    )
                time.sleep(0.1)

    def shell(
        self, access: Access, prefer_native: bool = True, target: Target | None = None
    ) -> int:
        """psql (the password in a private passfile, never in argv), else the built-in."""
        psql = shutil.which("psql")
        if prefer_native and psql:
            return run_psql(psql, access.url)
        from sdtutor.cli.sqlshell import builtin_prompt

        return builtin_prompt(access.url)

    def run_file(self, access: Access, path: Path) -> None:
        """Run a SQL file statement by statement (see cli.sqlshell.run_file)."""
        from sdtutor.cli.sqlshell import run_file

        run_file(access.url, path)

    def apply_file(self, access: Access, path: Path) -> int:
        """Run a SQL file statement by statement, quietly."""
        return sum(1 for _ in run_statements(access.url, path))


def run_psql(psql: str, url: str, *args: str) -> int:
    """Run psql on `url` with the password in a 0600 passfile, not in its argv."""
    parts = urlsplit(url)
    password = unquote(parts.password or "")
    host = parts.netloc.rsplit("@", 1)[-1]
    user = unquote(parts.username or "")
    bare = urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))
    with tempfile.TemporaryDirectory(prefix="sdtutor-psql-") as tmp:
        env = dict(os.environ)
        if password:
            passfile = Path(tmp) / "pgpass"
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            field = password.replace("\\", "\\\\").replace(":", "\\:")
            # libpq sends the bytes as they are; the URL's password is UTF-8, whatever the locale.
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"*:*:*:*:{field}\n")
            env["PGPASSFILE"] = str(passfile)
        env.pop("PGPASSWORD", None)
        return subprocess.run([psql, bare, *args], env=env).returncode


__all__ = [
    "PostgresKind",
    "SqlStep",
    "StatementRefused",
    "admin",
    "connect",
    "create_database",
    "drop_database",
    "run_psql",
    "run_setup",
    "run_statements",
    "split_statements",
    "sql_steps",
    "with_database",
]
