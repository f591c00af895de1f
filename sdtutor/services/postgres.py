"""The PostgreSQL service kind, and running SQL files on a lab's database.

A lab's namespace on a server is a login role `sdtutor_<home>_<slug>` (not a superuser)
owning a database of the same name, copied from a seeded template `..._tpl` that the
role also owns: seeding runs once, and `lab reset` or a start after `lab stop` is a
copy (0.1-0.3 s for the indexing lab's 28 MB). Each carries a comment, the marker that
says which home made it; nothing is dropped without it.

A lab may ask for extra roles (lab.yaml `roles: [reporting]` on a postgres instance): NOLOGIN
roles `<lab role>_<name>` made before the seed runs and dropped with the lab's role, for
the lab's login to grant to. The lab's login holds no membership in them: it grants as
the owner of its tables, and cannot hand the roles, or become them, any other way.
Seeds, apply-files and `lab shell` name them as psql variables (`:"reporting"`); learner
code reads `DATABASE_ROLE_REPORTING`.

The kind's own statements (roles, markers, copies) go through `libpq.session`, which
skips psycopg's ~100 ms import and quotes identifiers and literals with libpq; seeding,
learner files and shells use psycopg.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
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


ROLE_ENV_PREFIX = "DATABASE_ROLE_"
"""Learner code finds a lab's extra role `reporting` in DATABASE_ROLE_REPORTING."""
MAX_IDENTIFIER = 63  # PostgreSQL cuts longer names short, silently


def extra_role(lab_role: str, name: str) -> str:
    """The server's name for a lab's extra role `name`: `<lab role>_<name>`."""
    return f"{lab_role}_{name}"


def role_env(roles: Mapping[str, str]) -> dict[str, str]:
    """Learner-code variables naming a lab's extra roles (short name -> server name)."""
    return {ROLE_ENV_PREFIX + short.upper(): role for short, role in roles.items()}


def role_variables(env: Mapping[str, str]) -> dict[str, str]:
    """psql variables (`:"reporting"`) naming a lab's extra roles, from its Access.env."""
    return {
        key[len(ROLE_ENV_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.startswith(ROLE_ENV_PREFIX)
    }


def substitute_variables(text: str, variables: Mapping[str, str]) -> str:
    """Interpolate psql variables as psql does: `:"name"` as a quoted identifier,
    `:'name'` as a literal, `:name` as it is; never inside strings, quoted names or
    comments, nor after `::`. Names not in `variables` are left alone (psql would too);
    text sqlglot cannot split (an unclosed quote) is returned unchanged, for the server
    to refuse."""
    if not variables or ":" not in text:
        return text
    from sqlglot.dialects.postgres import Postgres
    from sqlglot.errors import TokenError
    from sqlglot.tokens import TokenType

    try:
        tokens = Postgres().tokenize(text)
    except TokenError:
        return text
    out, done = [], 0
    for colon, name in itertools.pairwise(tokens):
        if colon.token_type != TokenType.COLON or name.start != colon.end + 1:
            continue
        raw = text[name.start : name.end + 1]
        bare = raw[1:-1] if raw[:1] in "\"'" and raw[:1] == raw[-1:] else raw
        if bare not in variables:
            continue
        value = variables[bare]
        if raw.startswith('"'):
            value = '"' + value.replace('"', '""') + '"'
        elif raw.startswith("'"):
            value = "'" + value.replace("'", "''") + "'"
        out += [text[done : colon.start], value]
        done = name.end + 1
    return "".join(out) + text[done:]


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
        _drop(s, dbname, url)
        _create(s, url, dbname, None, template)


def drop_database(url: str, dbname: str) -> None:
    """Drop a database, ending its sessions (tests and proofs: names of their own)."""
    with admin(url) as s:
        _drop(s, dbname, url)


def _drop(s: Session, dbname: str, url: str | None = None) -> None:
    """Drop a database; with the server's `url`, first roll back what is left prepared in it."""
    if url is not None:
        rollback_prepared(s, url, dbname)
    s.run(f"DROP DATABASE IF EXISTS {s.ident(dbname)} WITH (FORCE)")


def rollback_prepared(s: Session, url: str, dbname: str) -> list[str]:
    """Roll back every transaction left prepared in `dbname` (two-phase commit); their gids.

    A prepared transaction outlives its session and even a restart, and DROP DATABASE
    refuses while one remains ("database is being used by prepared transactions"), FORCE
    or not. Only a session in that database may finish it: one is opened when needed.
    """
    found = s.rows("SELECT gid FROM pg_prepared_xacts WHERE database = $1", dbname)
    if not found:
        return []
    gids = [str(row[0]) for row in found]
    with admin(with_database(url, dbname)) as inside:
        for gid in gids:
            inside.run(f"ROLLBACK PREPARED {inside.literal(gid)}")
    return gids


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
    url: str,
    path: Path,
    progress: Callable[[str, float | None], None] | None = None,
    variables: Mapping[str, str] | None = None,
) -> None:
    """Run a lab's setup file, one `-- step:` at a time, reporting progress.

    Each step goes to the server as one batch (one round trip, no parsing here). A
    statement that refuses a transaction block (VACUUM, CREATE INDEX CONCURRENTLY)
    must therefore be alone in its step. psql `variables` (the lab's extra roles,
    `:"reporting"`) are interpolated first. Raises LabError naming the file and the
    step's line when PostgreSQL refuses it.
    """
    from sdtutor.services.libpq import PgError

    steps = sql_steps(path)
    with admin(url) as s:  # libpq without psycopg: a first start skips its ~100 ms import
        # A bulk load is a few big one-shot statements: JIT compilation only adds time,
        # and sorts and index builds run faster in memory. This session only.
        s.script("SET jit = off; SET work_mem = '64MB'; SET maintenance_work_mem = '256MB'")
        for done, step in enumerate(steps):
            if progress:
                progress(step.description, done / max(len(steps), 1))
            try:
                s.script(substitute_variables(step.sql, variables or {}))
            except PgError as exc:
                raise LabError(
                    f"{path}:{step.line}: PostgreSQL refused '{step.description}': "
                    f"{exc.detail.strip().splitlines()[0]}",
                    "Fix the SQL in that step (a VACUUM must be alone in its step).",
                ) from None
        if progress:
            progress("Done", 1.0)


class StatementRefused(LabError):
    """PostgreSQL refused a statement of a learner's SQL file; the message names file:line."""


@dataclass(frozen=True)
class ScriptItem:
    """One statement of a learner's SQL file, or one psql meta-command line (`\\di`)."""

    line: int  # the first line of its code
    text: str
    meta: bool = False
    last_line: int = 0  # where it ends (a statement's semicolon)


def script_items(text: str) -> list[ScriptItem]:
    """A SQL file's statements and psql meta-command lines, in the order psql runs them.

    A meta-command is a line that starts with a backslash outside any string, quoted
    name or comment (`\\di`, `\\set n 5`); it ends at the end of its line, as in psql.
    Statements end at top-level semicolons (sqlglot's tokenizer knows quotes, dollar
    quotes and comments) and keep their original text.
    """
    from sqlglot.dialects.postgres import Postgres
    from sqlglot.errors import TokenError
    from sqlglot.tokens import TokenType

    dialect = Postgres()
    metas: list[tuple[int, int]] = []  # (start, end) offsets
    blanked = text
    offset = 0
    for row in text.splitlines(keepends=True):
        if row.lstrip().startswith("\\"):
            start = offset + len(row) - len(row.lstrip())
            end = offset + len(row.rstrip("\r\n"))
            try:  # inside an unfinished string or comment, the prefix cannot be tokenized
                dialect.tokenize(blanked[:start])
            except TokenError:
                pass
            else:
                metas.append((start, end))
                blanked = blanked[:start] + " " * (end - start) + blanked[end:]
        offset += len(row)

    def line_of(position: int) -> int:
        return text.count("\n", 0, position) + 1

    found: list[tuple[int, ScriptItem]] = []
    for start, end in metas:
        found.append((start, ScriptItem(line_of(start), text[start:end], True, line_of(start))))

    def add(start: int, end: int) -> None:
        chunk = blanked[start:end]
        if not _has_code(chunk):
            return
        # The chunk starts with any comment above it; name its first code line.
        lead = next(
            i
            for i, row in enumerate(chunk.splitlines())
            if row.strip() and not row.strip().startswith("--")
        )
        first = line_of(start) + lead
        found.append((end, ScriptItem(first, chunk.strip(), False, line_of(end))))

    start = 0
    for token in dialect.tokenize(blanked):
        if token.token_type == TokenType.SEMICOLON:
            add(start, token.start)
            start = token.end + 1
    add(start, len(blanked))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]


MetaHandler = Callable[[ScriptItem, Any], None]


def run_statements(
    url: str,
    path: Path,
    on_meta: MetaHandler | None = None,
    variables: Mapping[str, str] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Run a learner's SQL file statement by statement, as `lab shell -f --builtin` does.

    Yields (line, cursor) after each statement, psql `variables` interpolated as psql
    would. A psql meta-command line (`\\di`) is not
    SQL: it goes to `on_meta(item, connection)`, or is skipped without one. Raises
    LabError when the file is missing, and StatementRefused, naming file and line, at the
    first statement PostgreSQL refuses.
    """
    import psycopg
    from sqlglot.errors import TokenError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabError(f"There is no file {path}.", "Give the path to a .sql file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"Cannot read {path}: {exc}", "Save it as UTF-8 text.") from None
    try:
        items = script_items(text)
    except TokenError:
        raise StatementRefused(
            f"{path.name}: a string, quoted name or comment is never closed "
            "(a missing ', \", $$ or */).",
            "Close it, then run the file again.",
        ) from None
    with connect(url, autocommit=True) as conn:
        for item in items:
            if item.meta:
                if on_meta is not None:
                    on_meta(item, conn)
                continue
            try:
                cur = conn.execute(substitute_variables(item.text, variables or {}).encode())
            except psycopg.Error as exc:
                raise StatementRefused(f"{path.name}:{item.line}: {str(exc).strip()}") from None
            yield item.line, cur


def psql_variable_args(variables: Mapping[str, str] | None) -> list[str]:
    """psql's `-v name=value` options (names of roles, not secrets: argv is fine)."""
    return [arg for name, value in (variables or {}).items() for arg in ("-v", f"{name}={value}")]


def apply_with_psql(
    psql: str, url: str, path: Path, variables: Mapping[str, str] | None = None
) -> int:
    """Run a learner's SQL file with psql, quietly, stopping at the first refused statement.

    Whatever psql accepts works (meta-commands included); its output is not shown.
    Returns how many statements the file holds (all ran). Raises StatementRefused naming
    `file:line` (the refused statement's first line), LabError when psql cannot read the
    file, ProviderError when it cannot reach the server.
    """
    import re

    try:
        items = [i for i in script_items(path.read_text(encoding="utf-8")) if not i.meta]
    except FileNotFoundError:
        raise LabError(f"There is no file {path}.", "Give the path to a .sql file.") from None
    except Exception:  # psql judges what it cannot split
        items = []
    # -X: the learner's ~/.psqlrc could turn off ON_ERROR_STOP; -q and no stdout: quiet.
    # In the file's folder, so that psql names it as the learner does (`indexes.sql:7:`).
    done = psql_process(
        psql,
        url,
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        *psql_variable_args(variables),
        "-f",
        path.name,
        cwd=path.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
    )
    if done.returncode == 0:
        return len(items)
    lines = (done.stderr or "").strip().splitlines()
    pattern = re.compile(rf"^psql:{re.escape(path.name)}:(\d+): (?:ERROR|error|FATAL):\s*(.*)$")
    for index, row in enumerate(lines):
        match = pattern.match(row)
        if not match:
            continue
        where = int(match.group(1))
        # psql names the line it was reading (a statement's last); name its first.
        line = next((i.line for i in items if i.line <= where <= i.last_line), where)
        detail = "\n".join([match.group(2), *lines[index + 1 :]]).strip()
        raise StatementRefused(f"{path.name}:{line}: {detail}")
    reason = lines[-1] if lines else f"exit status {done.returncode}"
    reason = reason.removeprefix("psql: error: ").removeprefix("psql: ")
    if done.returncode == 2:  # the connection failed or was lost
        raise ProviderError(
            f"psql could not reach PostgreSQL: {redact(reason)}",
            "Is the lab running? `sdtutor lab info` shows it; `sdtutor doctor` helps.",
        )
    raise LabError(f"psql could not run {path.name}: {reason}")


def _marker(s: Session, dbname: str, names: Names) -> str | None:
    """The comment on a database (its marker), '' when it has none, None when missing.

    CREATE DATABASE cannot share a transaction with the COMMENT that marks it, so a
    start or proof interrupted between the two leaves a database with no marker. One
    owned by this lab's role, itself marked as this home's, was made here (the role may
    not create databases; only sdtutor's admin login made it for the role): it counts as
    this home's, unfinished, and is dropped like any other copy instead of left behind.
    """
    found = s.rows(
        "SELECT coalesce(shobj_description(d.oid, 'pg_database'), ''), r.rolname, "
        "coalesce(shobj_description(r.oid, 'pg_authid'), '') "
        "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
        dbname,
    )
    if not found:
        return None
    marker, owner, owner_marker = (str(v) for v in found[0])
    if not marker and owner == names.role and names.owns(owner_marker):
        return names.marker("unfinished")
    return marker


def _role_marker(s: Session, role: str) -> str | None:
    """The comment on a role (its marker), '' when it has none, None when missing."""
    found = s.rows(
        "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1",
        role,
    )
    return str(found[0][0]) if found else None


def _marker_statement(s: Session, what: str, name: str, text: str) -> str:
    return f"COMMENT ON {what} {s.ident(name)} IS {s.literal(text)}"


def _set_marker(s: Session, what: str, name: str, text: str) -> None:
    s.run(_marker_statement(s, what, name, text))


def lab_roles(target: Target) -> dict[str, str]:
    """The instance's extra roles from lab.yaml: short name -> the server's name."""
    spec = next((i for i in target.lab.instances if i.name == target.instance), None)
    roles = {short: extra_role(target.names.role, short) for short in (spec.roles if spec else ())}
    too_long = [role for role in roles.values() if len(role) > MAX_IDENTIFIER]
    if too_long:
        raise LabError(
            f"The role name {too_long[0]} is longer than PostgreSQL's {MAX_IDENTIFIER} characters.",
            "Give the role a shorter name under `roles:` in lab.yaml.",
        )
    return roles


def _marked_roles(s: Session, names: Names) -> list[str]:
    """The extra roles this home made for this lab, by their marker (never by name alone)."""
    found = s.rows(
        "SELECT rolname FROM pg_roles WHERE rolname <> $1 "
        "AND starts_with(coalesce(shobj_description(oid, 'pg_authid'), ''), $2) ORDER BY 1",
        names.role,
        names.marker("role "),
    )
    return [str(row[0]) for row in found]


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
        roles = lab_roles(target)
        with admin(url) as s:
            password = self._ensure_role(s, names, target.handle.get("password"))
            self._ensure_extra_roles(s, names, roles)
            template_marker = _marker(s, names.template, names)
            refuse_foreign(names, f"PostgreSQL database {names.template}", template_marker)
            if template_marker != names.marker("seeded"):
                if template_marker is not None:
                    _drop(s, names.template)
                progress(f"Creating database {names.template} (seeded once)", None)
                _create(s, url, names.template, names.role, None)
                self._private(s, names.template, names.role, roles.values())
                _set_marker(s, "DATABASE", names.template, names.marker("seeding"))
                if target.setup is not None:
                    # As the lab's role, so it owns every table the learner must index.
                    seed_url = url_with_login(url, names.role, password, "/" + names.template)
                    run_setup(seed_url, target.setup, progress, roles)
                _set_marker(s, "DATABASE", names.template, names.marker("seeded"))
                fresh = True
            marker = _marker(s, names.database, names)
            refuse_foreign(names, f"PostgreSQL database {names.database}", marker)
            if fresh or marker != names.marker("ready"):
                progress(f"Copying the seeded data into {names.database}", None)
                if marker is not None:
                    _drop(s, names.database, url)
                _create(s, url, names.database, names.role, names.template)
                self._private(s, names.database, names.role, roles.values())
                _set_marker(s, "DATABASE", names.database, names.marker("ready"))
        login = url_with_login(url, names.role, password, "/" + names.database)
        return Access(login, env=role_env(roles))

    @staticmethod
    def _ensure_role(s: Session, names: Names, password: str | None) -> str:
        """The lab's login role (not a superuser), made if missing; returns its password."""
        marker = _role_marker(s, names.role)
        refuse_foreign(names, f"PostgreSQL role {names.role}", marker)
        password = password or secrets.token_urlsafe(18)
        verb = "CREATE" if marker is None else "ALTER"
        # One transaction: an interrupted start never leaves a role without its marker.
        s.script(
            f"{verb} ROLE {s.ident(names.role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"NOREPLICATION NOBYPASSRLS PASSWORD {s.password(password, names.role)}; "
            + _marker_statement(s, "ROLE", names.role, names.marker())
        )
        return password

    @staticmethod
    def _ensure_extra_roles(s: Session, names: Names, roles: Mapping[str, str]) -> None:
        """The lab's extra roles (NOLOGIN, no membership given to anyone), made if missing.

        The lab's login gets no membership, let alone ADMIN OPTION: it grants privileges
        on its tables as their owner, which is all a lab asks of it. With ADMIN OPTION it
        could hand the role to any other login on a shared server (and on PostgreSQL 16
        rewrite its marker); as a member it would inherit whatever it granted.
        """
        for short, role in roles.items():
            marker = _role_marker(s, role)
            refuse_foreign(names, f"PostgreSQL role {role}", marker)
            verb = "CREATE" if marker is None else "ALTER"
            s.script(  # one transaction, as for the login
                f"{verb} ROLE {s.ident(role)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOREPLICATION NOBYPASSRLS; "
                + _marker_statement(s, "ROLE", role, names.marker(f"role {short}"))
            )
            # Memberships live outside the database a fresh copy replaces: take them back
            # too, so that the role holds only what the copy (and the seed) grant it.
            for granted, member in s.rows(
                "SELECT g.rolname, m.rolname FROM pg_auth_members a "
                "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
                "WHERE g.rolname = $1 OR m.rolname = $1",
                role,
            ):
                s.run(f"REVOKE {s.ident(str(granted))} FROM {s.ident(str(member))}")

    @staticmethod
    def _private(s: Session, dbname: str, role: str, extra: Iterable[str] = ()) -> None:
        """Only the lab's roles (and admins) may connect: other students share the server.

        Its extra roles may connect too (what they may read is the lab's to grant).
        """
        s.run(f"REVOKE ALL ON DATABASE {s.ident(dbname)} FROM PUBLIC")
        s.run(f"GRANT CONNECT, TEMPORARY ON DATABASE {s.ident(dbname)} TO {s.ident(role)}")
        for other in extra:
            s.run(f"GRANT CONNECT ON DATABASE {s.ident(dbname)} TO {s.ident(other)}")

    def teardown(self, target: Target, purge: bool = False) -> None:
        """Drop the lab's database (and with `purge` its template and role), marker first.

        Transactions the lab left prepared (PREPARE TRANSACTION) are rolled back first:
        they would keep the database from being dropped.
        """
        names = target.names
        with admin(target.admin_url) as s:
            for dbname in (names.database, names.template):
                marker = _marker(s, dbname, names)
                refuse_foreign(names, f"PostgreSQL database {dbname}", marker)
                # A half-seeded template (Ctrl-C, a failed seed) is never worth keeping.
                keep = dbname == names.template and marker == names.marker("seeded")
                if marker is not None and (purge or not keep):
                    _drop(s, dbname, target.admin_url)
            if purge:
                # Its extra roles first, found by their marker (whatever lab.yaml says now).
                for role in _marked_roles(s, names):
                    s.run(f"DROP ROLE {s.ident(role)}")
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
        variables = role_variables(access.env)
        if prefer_native and psql:
            return run_psql(psql, access.url, *psql_variable_args(variables))
        from sdtutor.cli.sqlshell import builtin_prompt

        return builtin_prompt(access.url, variables)

    def run_file(self, access: Access, path: Path, prefer_native: bool = True) -> None:
        """Run a SQL file statement by statement, showing what each did: with psql where
        installed and `prefer_native`, else sdtutor's own runner (see cli.sqlshell)."""
        from sdtutor.cli.sqlshell import run_file

        run_file(access.url, path, prefer_psql=prefer_native, variables=role_variables(access.env))

    def apply_file(
        self,
        access: Access,
        path: Path,
        prefer_native: bool = True,
        notes: list[str] | None = None,
    ) -> int:
        """Run a SQL file quietly, stopping at the first statement PostgreSQL refuses.

        With psql (where installed and `prefer_native`) the file takes what `lab shell -f`
        takes, meta-commands such as `\\di` or `\\set` included. sdtutor's own runner
        skips meta-command lines, saying so in `notes`.
        """
        psql = shutil.which("psql")
        variables = role_variables(access.env)
        if prefer_native and psql:
            return apply_with_psql(psql, access.url, path, variables)
        skipped: list[ScriptItem] = []
        statements = run_statements(access.url, path, lambda i, _: skipped.append(i), variables)
        count = sum(1 for _ in statements)
        if skipped and notes is not None:
            notes.append(skipped_note(path, skipped))
        return count


def skipped_note(path: Path, skipped: list[ScriptItem]) -> str:
    """One sentence on the psql meta-commands sdtutor's own runner left out."""
    shown = ", ".join(f"{i.text.split()[0]} (line {i.line})" for i in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return (
        f"Skipped psql command{'s' if len(skipped) != 1 else ''} in {path.name}: "
        f"{shown}{more}; sdtutor's own runner sends SQL only (install psql to run them)."
    )


def run_psql(psql: str, url: str, *args: str) -> int:
    """Run psql on `url` with the password in a 0600 passfile, not in its argv."""
    return psql_process(psql, url, *args).returncode


def psql_process(psql: str, url: str, *args: str, **options: Any) -> subprocess.CompletedProcess:
    """run_psql's work, with `options` for subprocess.run (where its output goes)."""
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
        return subprocess.run([psql, bare, *args], env=env, **options)


__all__ = [
    "ROLE_ENV_PREFIX",
    "PostgresKind",
    "ScriptItem",
    "SqlStep",
    "StatementRefused",
    "admin",
    "apply_with_psql",
    "connect",
    "create_database",
    "drop_database",
    "extra_role",
    "psql_process",
    "psql_variable_args",
    "role_env",
    "role_variables",
    "rollback_prepared",
    "run_psql",
    "run_setup",
    "run_statements",
    "script_items",
    "skipped_note",
    "split_statements",
    "sql_steps",
    "substitute_variables",
    "with_database",
]
