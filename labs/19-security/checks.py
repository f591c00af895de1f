"""Checks for the security lab: the app attacked the way an attacker would, judged by
what the servers saw.

Never the learner's word. A lookup is judged by the rows PostgreSQL sent and by the
statement text PostgreSQL received (a bound parameter never appears in it). A fetch is
judged by what the checker's own HTTP server, which plays every address on the internet
and inside it, was asked for. The reporting role is judged by asking PostgreSQL what the
role can do (privilege functions follow grants to PUBLIC and role membership). Signup
bodies and tokens are judged against answers the checker works out itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sdtutor.lab.checks import CannotCheck, CheckContext, Evidence, Fail, Pass, check
from sdtutor.lab.checks.context import statements_evidence
from sdtutor.services.postgres import extra_role

HARNESS = Path(__file__).with_name("harness.py")
HARNESS_FILE = "sdtutor_security_harness.py"  # its name in the sandbox, beside the files
FILES = {HARNESS_FILE: HARNESS}


def _clip(text: Any, width: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _listed(items: list[str], shown: int = 4) -> str:
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def _ran(run: Any, what: str) -> list[dict[str, Any]]:
    """A harness run's answers, or Fail saying how the learner's code fell over."""
    if run.timed_out or run.limit:
        raise Fail(
            f"{what} did not finish ({run.limit or 'it ran out of time'}). Does a loop "
            "never end (a redirect followed forever), or does it wait on something?",
            Evidence("its output", "text", run.output or "(none)"),
        )
    if not run.ok:
        raise Fail(
            f"{what} could not run: {run.error}",
            Evidence("traceback", "text", run.traceback or run.output or "(none)"),
        )
    return list(run.value)


# ------------------------------------------------------------------ task 1: the lookup

USERS = "users.py"
KNOWN = {"ada@example.com": 1, "o'brien@example.ie": 3, "nobody@example.com": None}
ATTACKS = (
    "zz{m}' OR '1'='1",
    "zz{m}' OR 1=1 --",
    "zz{m}' UNION SELECT id, secret, secret FROM api_keys --",
    "zz{m}'; DROP TABLE canary; --",
    "ada@example.com' --zz{m}",
    "zz{m}\\' OR 1=1 --",
)
"""Classic payloads; zz<random> marks each one, so it can be spotted in statement text."""


def _emails() -> tuple[str, list[str]]:
    mark = secrets.token_hex(3)
    return mark, [*KNOWN, *(a.format(m=mark) for a in ATTACKS)]


def _lookups(ctx: CheckContext) -> tuple[str, list[dict[str, Any]], Any]:
    ctx.read(USERS)
    mark, emails = _emails()
    run = ctx.run(HARNESS_FILE, "lookups", USERS, emails, clients=("postgres",), files=FILES)
    return mark, _ran(run, "find_user"), run


@check("lookup-resists-injection")
def lookup_resists_injection(ctx: CheckContext) -> Pass:
    """Known customers found, attack payloads find nobody, the canary table survives."""
    _, answers, run = _lookups(ctx)
    problems: list[str] = []
    rows = [(a["email"], a.get("error") or _clip(a.get("result"))) for a in answers]
    for answer in answers:
        email, got = answer["email"], answer.get("result")
        if email in KNOWN:
            want = KNOWN[email]
            if "error" in answer:
                problems.append(f"find_user({email!r}) raised {answer['error']}")
            elif want is None and got is not None:
                problems.append(
                    f"find_user({email!r}) found {_clip(got)} (there is no such customer)"
                )
            elif want is not None and (not isinstance(got, dict) or got.get("id") != want):
                problems.append(f"find_user({email!r}) returned {_clip(got)}, not customer {want}")
        elif "error" in answer:
            problems.append(
                f"the payload {email!r} made PostgreSQL raise {answer['error']}: it was read as SQL"
            )
        elif got is not None:
            problems.append(f"the payload {email!r} returned {_clip(got)}")
    sent = run.server["postgres"].rows if "postgres" in run.server else 0
    canary = ctx.value("SELECT count(*) FROM pg_tables WHERE tablename = 'canary'")
    evidence = [
        Evidence("what find_user returned", "table", (("email typed", "result"), rows)),
        statements_evidence(run, service="postgres"),
    ]
    if not canary:
        problems.append(
            "the table canary is gone: a payload dropped it (`sdtutor lab reset security "
            "--data` brings it back)"
        )
    if sent > 2:
        problems.append(
            f"PostgreSQL sent {sent} rows for {len(answers)} lookups that match 2 customers"
        )
    if problems:
        raise Fail(
            f"{_listed(problems, 2)}. O'Brien's apostrophe and an attacker's are the same "
            "character: while the email is pasted into the SQL text, either one ends the "
            "string and the rest is read as SQL. Send the email as a parameter.",
            *evidence,
        )
    return Pass(
        f"{len(answers)} lookups: Ada and O'Brien found, {len(ATTACKS)} payloads found "
        f"nobody, PostgreSQL sent {sent} rows, the canary table is still there.",
        *evidence,
    )


@check("lookup-parameterised")
def lookup_parameterised(ctx: CheckContext) -> Pass:
    """No typed email appears inside any statement PostgreSQL received."""
    mark, _, run = _lookups(ctx)
    statements = list(run.server["postgres"].statements) if "postgres" in run.server else []
    lookups = [s for s in statements if "customers" in s.lower()]
    if not lookups:
        raise Fail(
            "find_user sent PostgreSQL no statement that reads customers: it must look "
            "the customer up in the database.",
            statements_evidence(run, service="postgres"),
        )
    inlined = [s for s in statements if f"zz{mark}" in s or "brien@example" in s]
    if inlined:
        raise Fail(
            f"PostgreSQL received the typed email inside the SQL text: "
            f"`{_clip(inlined[0], 90)}`. Escaping quotes by hand (or with a quoting "
            "helper) leaves the value in the statement, one forgotten case away from "
            "injection. Pass it as a parameter, conn.execute(sql, (email,)): the server "
            "then receives `... = $1` and the value apart from it.",
            statements_evidence(run, service="postgres"),
        )
    return Pass(
        f"{len(lookups)} lookups reached PostgreSQL as `{_clip(lookups[0], 70)}`, the email "
        "bound as a parameter.",
        statements_evidence(run, service="postgres"),
    )


# ------------------------------------------------------------------ task 2: the fetcher

FETCH = "fetch.py"
METADATA = "169.254.169.254"
DNS = {
    "public.example": ["93.184.215.14"],
    "cdn.example": ["151.101.1.69"],
    "docs.example": ["2606:4700:4700::1111"],
    "internal.example": ["10.0.0.5"],
    "metadata.example": [METADATA],
    "mixed.example": ["93.184.215.14", "10.1.2.3"],
    "v6-internal.example": ["fd00::5"],
    "localhost": ["127.0.0.1", "::1"],
}
"""What the checker's DNS answers (numeric spellings resolve as getaddrinfo would)."""
INSIDE = (
    ("http://169.254.169.254/latest/meta-data/", "the metadata service"),
    ("http://2852039166/latest/meta-data/", "the metadata service, as one decimal number"),
    ("http://0251.0376.0251.0376/latest/", "the metadata service, in octal"),
    ("http://0xa9.0xfe.0xa9.0xfe/latest/", "the metadata service, in hex"),
    ("http://[::ffff:169.254.169.254]/latest/", "the metadata service, IPv4-mapped IPv6"),
    ("http://public.example@169.254.169.254/", "the metadata service behind a user name"),
    ("http://metadata.example/latest/", "a DNS name that resolves to the metadata service"),
    ("http://127.1/", "loopback, short form"),
    ("http://LocalHost./admin", "localhost, capitalised, with a trailing dot"),
    ("http://[::1]:8080/", "IPv6 loopback"),
    ("http://0.0.0.0:6379/", "0.0.0.0 (this host)"),
    ("http://10.1.2.3/", "10/8"),
    ("http://172.31.255.254/", "172.16/12"),
    ("http://192.168.0.1/", "192.168/16"),
    ("http://100.64.0.1/", "100.64/10, carrier-grade NAT"),
    ("http://[fd00::5]/", "fd00::/8, IPv6 private"),
    ("http://[fe80::1]/", "fe80::/10, IPv6 link-local"),
    ("http://internal.example/", "a DNS name that resolves to 10.0.0.5"),
    ("http://v6-internal.example/", "a DNS name that resolves to fd00::5"),
    ("http://mixed.example/", "a name with a public and a private address"),
    ("http://public.example/to-metadata", "a public page that redirects to the metadata service"),
    ("http://public.example/to-internal", "a public page that redirects to internal.example"),
    ("http://public.example/to-decimal", "a public page that redirects to 2852039166"),
    ("file:///etc/passwd", "a file: URL"),
)
ALLOWED = (
    ("http://public.example/hello", "page /hello at 93.184.215.14"),
    ("https://docs.example/guide", "page /guide at 2606:4700:4700::1111"),
    ("http://93.184.215.14/c", "page /c at 93.184.215.14"),
    ("http://172.32.0.1/", "page / at 172.32.0.1"),
    ("http://public.example:8080/port", "page /port at 93.184.215.14"),
    ("http://public.example/to-public", "page /landing at 151.101.1.69"),
    ("http://public.example/relative", "page /landing at 93.184.215.14"),
)
"""Public URLs and the page the checker's server answers for each (redirects followed)."""
REDIRECTS = {
    "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "/to-internal": "http://internal.example/admin",
    "/to-decimal": "http://2852039166/latest/",
    "/to-public": "http://cdn.example/landing",
    "/relative": "/landing",
}
SECRET_PAGE = "AccessKeyId=ASIA-LAB-SECRET; Token=metadata-credentials"


def _inside(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return True  # not an address: the harness refuses it anyway
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global


@dataclass
class _Net:
    """The checker's HTTP server, playing every address the learner's send() names."""

    hits: list[tuple[int, str, str]] = field(default_factory=list)  # (case, address, path)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, case: int, target: str, path: str) -> tuple[int, dict[str, str], str]:
        with self.lock:
            self.hits.append((case, target, path))
        if _inside(target):
            return 200, {}, SECRET_PAGE
        bare = unquote(urlsplit(path).path) or "/"
        if bare in REDIRECTS:
            return 302, {"Location": REDIRECTS[bare]}, ""
        return 200, {}, f"page {bare} at {ipaddress.ip_address(target)}"

    def leaks(self, case: int) -> list[str]:
        return [t for c, t, _ in self.hits if c == case and _inside(t)]


@contextmanager
def _network() -> Iterator[tuple[_Net, int]]:
    net = _Net()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            case = int(self.headers.get("X-Sdtutor-Case", "-1"))
            target = self.headers.get("X-Sdtutor-Target", "")
            status, headers, body = net.answer(case, target, self.path)
            data = body.encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield net, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _fetches(ctx: CheckContext, urls: list[str]) -> tuple[_Net, list[dict[str, Any]]]:
    ctx.read(FETCH)
    with _network() as (net, port):
        run = ctx.run(HARNESS_FILE, "fetches", FETCH, urls, DNS, port, files=FILES)
        answers = _ran(run, "fetch_preview")
    return net, answers


def _outcome(answer: dict[str, Any]) -> str:
    if "blocked" in answer:
        return f"Blocked ({_clip(answer['blocked'], 40)})"
    if "error" in answer:
        return f"raised {_clip(answer['error'], 50)}"
    return f"returned {_clip(answer.get('result'), 40)!r}"


@check("fetch-refuses-inside")
def fetch_refuses_inside(ctx: CheckContext) -> Pass:
    """Every inside URL raises Blocked, and none of them reaches an inside address."""
    net, answers = _fetches(ctx, [url for url, _ in INSIDE])
    leaked, unblocked, rows = [], [], []
    for case, ((url, what), answer) in enumerate(zip(INSIDE, answers, strict=True)):
        reached = net.leaks(case)
        rows.append((url, what, _outcome(answer), ", ".join(sorted(set(reached))) or "-"))
        if reached:
            leaked.append(f"{url} ({what}) reached {reached[0]}")
        elif "blocked" not in answer:
            unblocked.append(f"{url} ({what}) {_outcome(answer)}")
    evidence = Evidence(
        "each URL, what fetch_preview did, and the inside addresses it reached",
        "table",
        (("url", "what it is", "outcome", "reached"), rows),
    )
    if leaked:
        raise Fail(
            f"{len(leaked)} of {len(INSIDE)} inside URLs got through, and the server "
            f"there answered: {_listed(leaked, 3)}. A check on how the host is spelled "
            "misses the other spellings; resolve the host, check every address it has "
            "(and every redirect's), and send to an address you checked.",
            evidence,
        )
    if unblocked:
        raise Fail(
            f"Nothing leaked, but not every inside URL was refused with Blocked: "
            f"{_listed(unblocked, 3)}. Raise Blocked for them (the caller tells a refusal "
            "from a broken page by it).",
            evidence,
        )
    return Pass(
        f"All {len(INSIDE)} inside URLs were refused; the checker's server saw no request "
        "for an inside address.",
        evidence,
    )


@check("fetch-allows-public")
def fetch_allows_public(ctx: CheckContext) -> Pass:
    """Public URLs return the page the public server sent, redirects followed."""
    _, answers = _fetches(ctx, [url for url, _ in ALLOWED])
    wrong, rows = [], []
    for (url, page), answer in zip(ALLOWED, answers, strict=True):
        rows.append((url, _outcome(answer), page))
        if answer.get("result") != page:
            wrong.append(f"{url} {_outcome(answer)}")
    evidence = Evidence(
        "public URLs: what fetch_preview did, and the page the server holds",
        "table",
        (("url", "outcome", "the page"), rows),
    )
    if wrong:
        raise Fail(
            f"{len(wrong)} of {len(ALLOWED)} public URLs did not come back as their page: "
            f"{_listed(wrong, 3)}. A preview service that refuses the public internet is "
            "safe and useless: refuse by address, not by look, and follow redirects that "
            "stay outside.",
            evidence,
        )
    return Pass(f"All {len(ALLOWED)} public URLs fetched, redirects included.", evidence)


# ------------------------------------------------------------------ task 3: least privilege

READS = (("orders", None), ("customers", "id"), ("customers", "name"), ("customers", "country"))
SECRETS = (("customers", "email"), ("customers", "password_hash"), ("api_keys", None))
WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _reporting(ctx: CheckContext) -> str:
    user = unquote(urlsplit(ctx.urls["postgres"]).username or "")
    role = extra_role(user, "reporting")
    if not ctx.value("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)):
        raise CannotCheck(f"the reporting role {role} is missing: `sdtutor lab reset security`")
    return role


def _can_read(ctx: CheckContext, role: str, table: str, column: str | None) -> bool:
    if column is None:
        sql = "SELECT has_table_privilege(%s, %s, 'SELECT')"
        return bool(ctx.value(sql, (role, f"public.{table}")))
    sql = "SELECT has_column_privilege(%s, %s, %s, 'SELECT')"
    return bool(ctx.value(sql, (role, f"public.{table}", column)))


@check("reporting-can-read")
def reporting_can_read(ctx: CheckContext) -> Pass:
    """What the report reads, the role can read (asked of PostgreSQL, not of grants.sql)."""
    role = _reporting(ctx)
    missing = [
        f"{table}.{column}" if column else table
        for table, column in READS
        if not _can_read(ctx, role, table, column)
    ]
    if not ctx.value("SELECT has_schema_privilege(%s, 'public', 'USAGE')", (role,)):
        missing.append("the schema public (USAGE)")
    if missing:
        raise Fail(
            f"PostgreSQL says {role} cannot read {', '.join(missing)}: the monthly report "
            "fails with `permission denied`. Least privilege is everything the job needs "
            "and nothing more; grant what is missing in grants.sql and apply it "
            "(`sdtutor lab shell security -f grants.sql`).",
        )
    return Pass(f"{role} can read orders and customers (id, name, country).")


@check("reporting-least-privilege")
def reporting_least_privilege(ctx: CheckContext) -> Pass:
    """No table or sequence it can write, no secret it can read, no role it is a member
    of; each finding says by which route (a direct grant, PUBLIC, membership)."""
    role = _reporting(ctx)
    member_of = [
        str(r)
        for (r,) in ctx.query(
            "SELECT roleid::regrole::text FROM pg_auth_members WHERE member = %s::regrole",
            (role,),
        )
    ]

    def route(check_sql: str, args: tuple[Any, ...]) -> str:
        if ctx.value(check_sql, ("public", *args)):
            return "through PUBLIC"
        return f"through membership in {member_of[0]}" if member_of else "granted to it"

    found: list[str] = []
    tables = [
        t
        for (t,) in ctx.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1"
        )
    ]
    for table in tables:
        for privilege in WRITES:
            sql = "SELECT has_table_privilege(%s, %s, %s)"
            if ctx.value(sql, (role, f"public.{table}", privilege)):
                found.append(
                    f"{privilege} on {table} ({route(sql, (f'public.{table}', privilege))})"
                )
                break
        else:
            sql = "SELECT has_any_column_privilege(%s, %s, %s)"
            for privilege in ("INSERT", "UPDATE"):
                if ctx.value(sql, (role, f"public.{table}", privilege)):
                    found.append(f"{privilege} on columns of {table}")
                    break
    sequences = [
        s
        for (s,) in ctx.query(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
        )
    ]
    for sequence in sequences:
        sql = "SELECT has_sequence_privilege(%s, %s, 'USAGE, UPDATE')"
        if ctx.value(sql, (role, f"public.{sequence}")):
            found.append(f"nextval on {sequence} ({route(sql, (f'public.{sequence}',))})")
    for table, column in SECRETS:
        if _can_read(ctx, role, table, column):
            where = f"{table}.{column}" if column else table
            sql = (
                "SELECT has_table_privilege(%s, %s, 'SELECT')"
                if column is None
                else "SELECT has_column_privilege(%s, %s, %s, 'SELECT')"
            )
            args = (f"public.{table}",) if column is None else (f"public.{table}", column)
            found.append(f"SELECT on {where} ({route(sql, args)})")
    if ctx.value("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)):
        found.append("CREATE in schema public")
    if ctx.value(
        "SELECT has_database_privilege(%s, current_database(), 'CREATE, TEMPORARY')", (role,)
    ):
        found.append("CREATE or TEMPORARY on the database")
    if member_of and not any(f"membership in {member_of[0]}" in f for f in found):
        found.append(f"membership in {', '.join(member_of)}")
    evidence = Evidence(
        f"what PostgreSQL says {role} can do beyond reading",
        "text",
        "\n".join(found) or "(nothing)",
    )
    if found:
        raise Fail(
            f"PostgreSQL says {role} has {len(found)} privilege(s) the report does not need: "
            f"{_listed(found, 3)}. A role holds what is granted to it, to PUBLIC (every "
            "role) and to any role it is a member of; a leaked reporting password should "
            "read the report's columns and nothing else. Revoke in grants.sql and apply it.",
            evidence,
        )
    return Pass(
        f"{role} writes nothing (checked {len(tables)} tables, {len(sequences)} sequences, "
        "PUBLIC and memberships included) and reads no email, password hash or API key.",
        evidence,
    )


# ------------------------------------------------------------------ task 4: signup

SIGNUP = "signup.py"
NAMES = ("Ada Lovelace", "Zoë Ångström", "Siobhán O'Brien", "李雷", "Ada 🚀", "J", "Al-Khwārizmī")
LOCALS = ("ada", "o'brien", "zoe.a+news", "li_lei", "x-y")
DOMAINS = ("example.com", "example.co.uk", "mail.example.ie")


def _good(rng: random.Random) -> dict[str, Any]:
    length = rng.choice((12, 16, 40, 128))
    return {
        "email": f"{rng.choice(LOCALS)}@{rng.choice(DOMAINS)}",
        "name": rng.choice(NAMES),
        "age": rng.choice((13, 14, 30, 67, 149, 150)),
        "password": "".join(rng.choice("abcXYZ019!é ") for _ in range(length)),
    }


def _mutations(good: dict[str, Any]) -> list[tuple[str, Any]]:
    """(what is wrong, the body) for every mistake the fuzzer makes of one good body."""
    out: list[tuple[str, Any]] = []
    for name in good:
        out.append((f"no {name}", {k: v for k, v in good.items() if k != name}))
        for bad in (None, [good[name]], {"$ne": ""}):
            out.append((f"{name} is {bad!r}", {**good, name: bad}))
    for extra, value in (
        ("is_admin", True),
        ("role", "admin"),
        ("id", 1),
        ("email_verified", True),
    ):
        out.append((f"an extra field {extra}={value!r}", {**good, extra: value}))
    for age in (True, False, 30.0, "30", -1, 0, 12, 151, 10**12):
        out.append((f"age is {age!r}", {**good, "age": age}))
    out += [
        ("a 10,000-character name", {**good, "name": "A" * 10_000}),
        ("a blank name", {**good, "name": "   "}),
        ("an empty name", {**good, "name": ""}),
        ("a name holding a NUL", {**good, "name": "Ada\x00Lovelace"}),
        ("a name holding a newline", {**good, "name": "Ada\nLovelace"}),
        ("a name holding ESC", {**good, "name": "Ada\x1b[2J"}),
        ("a 10,000-character email", {**good, "email": "a" * 10_000 + "@example.com"}),
        ("an email without @", {**good, "email": "ada.example.com"}),
        ("an email with two @", {**good, "email": "ada@evil@example.com"}),
        ("an email with a space", {**good, "email": "ada @example.com"}),
        ("an email with a newline", {**good, "email": "ada@example.com\nBcc: x@evil.test"}),
        ("an email without a domain", {**good, "email": "ada@"}),
        ("an email with an undotted domain", {**good, "email": "ada@localhost"}),
        ("an 11-character password", {**good, "password": "a" * 11}),
        ("a 10,000-character password", {**good, "password": "p" * 10_000}),
        ("a name that is a number", {**good, "name": 42}),
        ("a password that is true", {**good, "password": True}),
        ("a list, not an object", [good]),
        ("a string, not an object", "email=ada@example.com"),
        ("null, not an object", None),
    ]
    return out


def _bodies() -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    rng = random.Random(19)
    goods = [_good(rng) for _ in range(30)]
    bads = [m for g in goods[:3] for m in _mutations(g)]
    return goods, bads


@check("signup-rejects-bad")
def signup_rejects_bad(ctx: CheckContext) -> Pass:
    """Every fuzzed bad body raises Invalid: not accepted, not a crash."""
    ctx.read(SIGNUP)
    _, bads = _bodies()
    run = ctx.run(HARNESS_FILE, "signups", SIGNUP, [b for _, b in bads], files=FILES)
    answers = _ran(run, "validate_signup")
    accepted, crashed = [], []
    for (what, _), answer in zip(bads, answers, strict=True):
        if "result" in answer:
            accepted.append(what)
        elif "error" in answer:
            crashed.append(f"{what}: {_clip(answer['error'], 50)}")
    seen = list(dict.fromkeys(accepted))
    evidence = Evidence(
        "bodies that got through, or crashed",
        "text",
        "\n".join([*(f"accepted: {a}" for a in seen), *(f"crashed: {c}" for c in crashed)])
        or "(none)",
    )
    if accepted:
        raise Fail(
            f"validate_signup accepted {len(accepted)} of {len(bads)} bad bodies, among "
            f"them: {_listed(seen, 4)}. Whatever it returns gets stored: an unknown field "
            "such as is_admin is how an account promotes itself, and an unbounded string "
            "is a memory bill. Check every rule in README.md's Task 4.",
            evidence,
        )
    if crashed:
        raise Fail(
            f"validate_signup crashed on {len(crashed)} bad bodies instead of raising "
            f"Invalid: {_listed(crashed, 3)}. A crash is a 500 and a stack trace in the "
            "logs; the client deserves a 422 that says what is wrong.",
            evidence,
        )
    return Pass(f"All {len(bads)} fuzzed bad bodies were refused with Invalid.", evidence)


@check("signup-accepts-good")
def signup_accepts_good(ctx: CheckContext) -> Pass:
    """Every good body comes back as exactly its four fields."""
    ctx.read(SIGNUP)
    goods, _ = _bodies()
    run = ctx.run(HARNESS_FILE, "signups", SIGNUP, goods, files=FILES)
    answers = _ran(run, "validate_signup")
    wrong = []
    for body, answer in zip(goods, answers, strict=True):
        if answer.get("result") != body:
            got = answer.get("invalid") or answer.get("error") or _clip(answer.get("result"))
            wrong.append(f"{body['name']!r}, {body['email']!r}, age {body['age']}: {got}")
    if wrong:
        raise Fail(
            f"validate_signup refused or changed {len(wrong)} of {len(goods)} good bodies: "
            f"{_listed(wrong, 3)}. Real names carry accents, apostrophes and scripts other "
            "than Latin; emails carry + and '. Refuse what is dangerous, not what is "
            "unfamiliar, and return exactly email, name, age and password.",
            Evidence("refused or changed", "text", "\n".join(wrong)),
        )
    return Pass(f"All {len(goods)} good bodies accepted, returned as they came.")


# ------------------------------------------------------------------ task 5: the secret

TOKENS = "tokens.py"
LEAKED = "sk-dev-7d2f9a41c08e4b6a95e3"
"""The key the starter shipped with: it is in the repository's history, so it is burnt."""


def _mac(key: str, user: int) -> str:
    return hmac.new(key.encode(), str(user).encode(), hashlib.sha256).hexdigest()


@check("secret-from-environment")
def secret_from_environment(ctx: CheckContext) -> Pass:
    """Signed with APP_SECRET as set (two values), refused when unset, the leaked key
    neither kept nor accepted."""
    ctx.read(TOKENS)
    one, two = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    forged = [f"42.{_mac(LEAKED, 42)}", f"1.{_mac(LEAKED, 1)}", "42.", "42.00ff"]
    run = ctx.run(HARNESS_FILE, "tokens", TOKENS, [one, two, None], forged, files=FILES)
    with_one, with_two, unset = _ran(run, "tokens.py")
    for answer, key in ((with_one, one), (with_two, two)):
        if "error" in answer:
            raise Fail(
                f"With APP_SECRET set, tokens.py raised {answer['error']}: read the key "
                "from os.environ['APP_SECRET'].",
            )
        if answer["token"] != f"42.{_mac(key, 42)}":
            made_with = (
                "the leaked key"
                if answer["token"] == f"42.{_mac(LEAKED, 42)}"
                else ("some other key")
            )
            raise Fail(
                f"With APP_SECRET set to a fresh random value, sign(42) gave "
                f"{_clip(answer['token'], 40)!r}, signed with {made_with}, not with "
                "APP_SECRET. The key must come from the environment, so each deployment "
                "has its own and rotating it needs no code change.",
            )
        if answer["verify_own"] != 42:
            raise Fail(
                f"verify() refused its own fresh token (it returned {answer['verify_own']!r})."
            )
        accepted = [
            f for f, v in zip(forged, answer["verify_forged"], strict=True) if v is not None
        ]
        if accepted:
            raise Fail(
                f"verify() accepted {len(accepted)} forged token(s), among them "
                f"{_clip(accepted[0], 30)!r}, made with the leaked key. Anyone who ever "
                "read the old code can log in as anyone: verify with APP_SECRET only.",
            )
    if "error" not in unset:
        raise Fail(
            f"With APP_SECRET unset, sign(42) still signed ({_clip(unset.get('token'), 30)!r}): "
            "a fallback secret. A server started without its key should refuse to run, "
            "not sign with a key written in the code that anyone can read.",
        )
    leaks = []
    for path in sorted(ctx.workspace.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".sql", ".env", ".txt", ".toml", ".cfg", ""):
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            leaks += [
                f"{path.relative_to(ctx.workspace)}:{n}"
                for n, line in enumerate(lines, 1)
                if LEAKED in line
            ]
    if leaks:
        raise Fail(
            f"The old key is still in the workspace ({', '.join(leaks[:3])}). It was "
            "committed, so it is leaked: delete it and rotate (a new key, in APP_SECRET).",
        )
    return Pass(
        "Tokens are signed with APP_SECRET (two random values tried), refused without it, "
        "and tokens forged with the leaked key are refused."
    )
