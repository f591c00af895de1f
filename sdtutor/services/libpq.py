"""A small blocking PostgreSQL session for the CLI's own administrative statements.

Making a lab's role, checking markers and copying a template are a dozen short
statements; importing psycopg to send them costs ~100 ms, about half of what `lab reset`
may take in all. This module talks to the same libpq psycopg uses, through ctypes
(~5 ms to load): the libpq bundled with psycopg-binary, else the system's. libpq does
the URL, the password file, TLS and authentication, exactly as for psycopg. Where no
libpq can be loaded this way, the same calls go through psycopg's own libpq wrapper.

Everything else (seeding, checks, shells, learner code) uses psycopg.

    with session(url) as s:
        s.rows("SELECT datname FROM pg_database WHERE datname = $1", name)
        s.run(f"DROP DATABASE {s.ident(name)}")
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sdtutor.errors import ProviderError
from sdtutor.providers.external import redact

CONNECTION_OK = 0
PGRES_COMMAND_OK, PGRES_TUPLES_OK = 1, 2
PG_DIAG_SQLSTATE = ord("C")

Row = tuple[str | None, ...]


class PgError(ProviderError):
    """The server refused one of the CLI's own statements; `sqlstate` says why."""

    def __init__(self, sqlstate: str, detail: str) -> None:
        # libpq's text starts with the severity ("ERROR:  ..."); psycopg's does not.
        for severity in ("ERROR:", "FATAL:", "PANIC:"):
            if detail.startswith(severity):
                detail = detail[len(severity) :].strip()
        super().__init__(
            f"PostgreSQL refused a statement of sdtutor's: {detail}",
            "`sdtutor doctor` checks the server; `sdtutor lab stop TOPIC` and a new start "
            "clear a half-made lab.",
        )
        self.sqlstate = sqlstate
        self.detail = detail


class Driver(Protocol):
    """One connection's worth of libpq: the few calls a Session needs."""

    def execute(self, query: bytes, params: list[bytes]) -> list[Row]: ...
    def script(self, sql: bytes) -> None: ...
    def escape(self, text: str, identifier: bool) -> str: ...
    def encrypt_password(self, password: str, user: str) -> str: ...
    def close(self) -> None: ...


# ---------------------------------------------------------------- ctypes


def _candidates() -> Iterator[str]:
    """libpq files to try: psycopg-binary's own copy first (the one psycopg uses)."""
    spec = importlib.util.find_spec("psycopg_binary")  # finds it; does not import it
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent
        for folder, pattern in (
            (package.parent / "psycopg_binary.libs", "libpq*"),  # Linux wheels
            (package / ".dylibs", "libpq*.dylib"),  # macOS wheels
        ):
            yield from sorted(str(p) for p in folder.glob(pattern))
    found = ctypes.util.find_library("pq")
    if found:
        yield found


_lib: Any = None
_NoticeProcessor = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_quiet = _NoticeProcessor(lambda arg, message: None)  # NOTICEs are not the learner's concern


def _library() -> Any:
    """libpq through ctypes with the prototypes declared; None when none loads."""
    global _lib
    if _lib is not None:
        return _lib or None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        ptr, text, num = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, restype, argtypes in (
            ("PQconnectdbParams", ptr, [ctypes.POINTER(text), ctypes.POINTER(text), num]),
            ("PQstatus", num, [ptr]),
            ("PQerrorMessage", text, [ptr]),
            ("PQsetNoticeProcessor", ptr, [ptr, _NoticeProcessor, ptr]),
            ("PQexecParams", ptr, [ptr, text, num, ptr, ctypes.POINTER(text), ptr, ptr, num]),
            ("PQexec", ptr, [ptr, text]),
            ("PQresultStatus", num, [ptr]),
            ("PQresultErrorMessage", text, [ptr]),
            ("PQresultErrorField", text, [ptr, num]),
            ("PQntuples", num, [ptr]),
            ("PQnfields", num, [ptr]),
            ("PQgetisnull", num, [ptr, num, num]),
            ("PQgetvalue", text, [ptr, num, num]),
            ("PQclear", None, [ptr]),
            ("PQfinish", None, [ptr]),
            ("PQescapeIdentifier", ptr, [ptr, text, ctypes.c_size_t]),
            ("PQescapeLiteral", ptr, [ptr, text, ctypes.c_size_t]),
            ("PQfreemem", None, [ptr]),
            ("PQencryptPasswordConn", ptr, [ptr, text, text, text]),
        ):
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
        _lib = lib
        return lib
    _lib = False
    return None


def _strings(values: list[bytes | None] | list[bytes]) -> Any:
    return (ctypes.c_char_p * len(values))(*values)


class _CtypesDriver:
    def __init__(self, lib: Any, options: dict[str, str]) -> None:
        self.lib = lib
        keys = [k.encode() for k in options] + [None]
        values = [v.encode() for v in options.values()] + [None]
        # Blocking; ctypes lets other threads run meanwhile (a progress display).
        self.conn = lib.PQconnectdbParams(_strings(keys), _strings(values), 1)
        if lib.PQstatus(self.conn) != CONNECTION_OK:
            message = (lib.PQerrorMessage(self.conn) or b"").decode("utf-8", "replace")
            lib.PQfinish(self.conn)
            raise ConnectionError(message)
        lib.PQsetNoticeProcessor(self.conn, _quiet, None)

    def _check(self, res: int | None) -> None:
        """Raise PgError unless `res` holds a successful result."""
        lib = self.lib
        if lib.PQresultStatus(res) not in (PGRES_COMMAND_OK, PGRES_TUPLES_OK):
            message = lib.PQresultErrorMessage(res) or lib.PQerrorMessage(self.conn) or b""
            sqlstate = lib.PQresultErrorField(res, PG_DIAG_SQLSTATE) or b""
            raise PgError(sqlstate.decode(), message.decode("utf-8", "replace").strip())

    def script(self, sql: bytes) -> None:
        res = self.lib.PQexec(self.conn, sql)  # the simple protocol: several statements
        try:
            self._check(res)
        finally:
            self.lib.PQclear(res)

    def execute(self, query: bytes, params: list[bytes]) -> list[Row]:
        lib = self.lib
        res = lib.PQexecParams(self.conn, query, len(params), None, _strings(params), None, None, 0)
        try:
            self._check(res)
            return [
                tuple(
                    None
                    if lib.PQgetisnull(res, row, col)
                    else lib.PQgetvalue(res, row, col).decode("utf-8")
                    for col in range(lib.PQnfields(res))
                )
                for row in range(lib.PQntuples(res))
            ]
        finally:
            lib.PQclear(res)

    def escape(self, text: str, identifier: bool) -> str:
        data = text.encode("utf-8")
        escape = self.lib.PQescapeIdentifier if identifier else self.lib.PQescapeLiteral
        return self._text(escape(self.conn, data, len(data)))

    def encrypt_password(self, password: str, user: str) -> str:
        # Algorithm NULL: whatever the server's password_encryption asks for.
        return self._text(
            self.lib.PQencryptPasswordConn(
                self.conn, password.encode("utf-8"), user.encode("utf-8"), None
            )
        )

    def _text(self, pointer: int | None) -> str:
        """The text libpq allocated at `pointer` (freed here); NULL is libpq's error."""
        if not pointer:
            raise PgError("", (self.lib.PQerrorMessage(self.conn) or b"").decode())
        try:
            return ctypes.string_at(pointer).decode("utf-8")
        finally:
            self.lib.PQfreemem(pointer)

    def close(self) -> None:
        if self.conn:
            self.lib.PQfinish(self.conn)
            self.conn = None


# ---------------------------------------------------------------- psycopg's wrapper


class _PsycopgDriver:
    """The same calls through psycopg.pq, for where ctypes finds no libpq."""

    def __init__(self, options: dict[str, str]) -> None:
        import psycopg
        from psycopg import pq

        try:
            conninfo = psycopg.conninfo.make_conninfo(options.pop("dbname"), **options)
            self.conn = pq.PGconn.connect(conninfo.encode())
        except psycopg.Error as exc:
            raise ConnectionError(str(exc)) from None
        if self.conn.status != pq.ConnStatus.OK:
            message = self.conn.error_message.decode("utf-8", "replace")
            self.conn.finish()
            raise ConnectionError(message)
        self.conn.notice_handler = lambda result: None
        self.pq = pq

    def _check(self, res: Any) -> None:
        pq = self.pq
        if res.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            message = res.error_message or self.conn.error_message
            sqlstate = res.error_field(pq.DiagnosticField.SQLSTATE) or b""
            raise PgError(sqlstate.decode(), message.decode("utf-8", "replace").strip())

    def script(self, sql: bytes) -> None:
        res = self.conn.exec_(sql)
        try:
            self._check(res)
        finally:
            res.clear()

    def execute(self, query: bytes, params: list[bytes]) -> list[Row]:
        res = self.conn.exec_params(query, list(params))
        try:
            self._check(res)
            return [
                tuple(
                    None if value is None else bytes(value).decode("utf-8")
                    for value in (res.get_value(row, col) for col in range(res.nfields))
                )
                for row in range(res.ntuples)
            ]
        finally:
            res.clear()

    def escape(self, text: str, identifier: bool) -> str:
        escaping = self.pq.Escaping(self.conn)
        data = text.encode("utf-8")
        out = escaping.escape_identifier(data) if identifier else escaping.escape_literal(data)
        return bytes(out).decode("utf-8")

    def encrypt_password(self, password: str, user: str) -> str:
        return bytes(self.conn.encrypt_password(password.encode(), user.encode())).decode()

    def close(self) -> None:
        self.conn.finish()


# ---------------------------------------------------------------- the session


class Session:
    """An autocommit session: `rows` returns text values (None for NULL), `run` returns
    nothing; parameters are `$1`, `$2`...; `ident` and `literal` quote for SQL text."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def rows(self, query: str, *params: str) -> list[Row]:
        return self._driver.execute(query.encode("utf-8"), [p.encode("utf-8") for p in params])

    def value(self, query: str, *params: str) -> str | None:
        """The first column of the first row; None when there is no row (or NULL)."""
        found = self.rows(query, *params)
        return found[0][0] if found else None

    def run(self, query: str, *params: str) -> None:
        self.rows(query, *params)

    def script(self, sql: str) -> None:
        """Run SQL text that may hold several statements (no parameters), as one batch:
        they form one implicit transaction unless they say otherwise."""
        self._driver.script(sql.encode("utf-8"))

    def ident(self, name: str) -> str:
        return self._driver.escape(name, identifier=True)

    def literal(self, text: str) -> str:
        return self._driver.escape(text, identifier=False)

    def password(self, password: str, user: str) -> str:
        """A literal holding the password's verifier, hashed here as the server asks
        (scram-sha-256, say): the password itself never reaches the server or its log."""
        return self.literal(self._driver.encrypt_password(password, user))


@contextmanager
def session(url: str, timeout: int = 5, via: str = "auto") -> Iterator[Session]:
    """A session on `url`; a server that cannot be reached is a ProviderError saying
    what to do. `via` ('auto', 'ctypes' or 'psycopg') is for tests."""
    options = {"dbname": url, "connect_timeout": str(timeout), "client_encoding": "UTF8"}
    lib = _library() if via in ("auto", "ctypes") else None
    if via == "ctypes" and lib is None:
        raise RuntimeError("no libpq loads through ctypes here")
    try:
        driver: Driver = _CtypesDriver(lib, options) if lib else _PsycopgDriver(options)
    except ConnectionError as exc:
        text = str(exc).strip()
        reason = text.splitlines()[-1] if text else "no answer"
        raise ProviderError(
            f"Cannot reach PostgreSQL at {redact(url)}: {reason}",
            "Start the server (or the lab: `sdtutor lab start TOPIC`), or fix the URL "
            "(SDTUTOR_POSTGRES_URL for the external provider). `sdtutor doctor` helps.",
        ) from None
    try:
        yield Session(driver)
    finally:
        driver.close()


__all__ = ["PgError", "Session", "session"]
