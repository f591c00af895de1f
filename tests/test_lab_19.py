"""Lab 19 (security): answers the proof's cases do not hold, judged right on a real server.

Other correct answers (other client APIs, other ways to judge an address, other grant
spellings) must pass; other wrong ones, including code that hangs and code that lies
(fetches, then claims it refused), must fail and say why. Runs on the machine's own
PostgreSQL in a namespace of this module; the proof itself runs in test_lab_proofs.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.services.base import Access, Target, kind
from sdtutor.services.names import Names, home_id
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "19-security"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").iterdir() if p.is_file()}


@dataclasses.dataclass
class Shop:
    lab: LabSpec
    target: Target


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, system_postgres: str) -> Iterator[Shop]:
    home = tmp_path_factory.mktemp("home-19")
    import os

    previous = os.environ.get("SDTUTOR_HOME")
    os.environ["SDTUTOR_HOME"] = str(home)
    lab = load_lab(LAB_DIR)
    target = Target(
        system_postgres, Names(home_id(), f"security-test-{secrets.token_hex(2)}"), "postgres", lab
    )
    try:
        yield Shop(lab, target)
    finally:
        kind("postgres").teardown(target, purge=True)
        if previous is None:
            os.environ.pop("SDTUTOR_HOME", None)
        else:
            os.environ["SDTUTOR_HOME"] = previous


def judge(
    shop: Shop, check_id: str, files: dict[str, str], time_limit: float | None = None
) -> CheckResult:
    """One check on a fresh copy of the seeded data, grants.sql applied, over a workspace
    that is the solution with `files` laid over it; `time_limit` replaces the lab's."""
    lab = dataclasses.replace(
        shop.lab, checks=tuple(c for c in shop.lab.checks if c.id == check_id)
    )
    if time_limit is not None:
        lab = dataclasses.replace(lab, time_limit=time_limit)
    access: Access = kind("postgres").provision(shop.target, fresh=True)
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab19-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        kind("postgres").apply_file(access, workspace / "grants.sql")
        # The whole lab's deadline, not one check's share: a hang is then stopped by the
        # per-call time limit, as in `lab check`.
        [result] = run_checks(lab, workspace, {"postgres": access.url}, deadline=90)
    return result


USERS_CURSOR_NAMED = """
def find_user(conn, email):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, email, name FROM customers WHERE email = %(email)s", {"email": email}
        )
        rows = cur.fetchall()
    return {"id": rows[0][0], "email": rows[0][1], "name": rows[0][2]} if rows else None
"""

USERS_CLIENT_CURSOR = """
import psycopg

def find_user(conn, email):
    # psycopg quotes the value itself, on the client: the literal is in the text.
    with psycopg.ClientCursor(conn) as cur:
        cur.execute("SELECT id, email, name FROM customers WHERE email = %s", (email,))
        row = cur.fetchone()
    return None if row is None else {"id": row[0], "email": row[1], "name": row[2]}
"""

USERS_FILTERS_AFTER = """
def find_user(conn, email):
    try:
        rows = conn.execute(
            f"SELECT id, email, name FROM customers WHERE email = '{email}'"
        ).fetchall()
    except Exception:
        return None
    rows = [r for r in rows if r[1] == email]  # "only the exact match gets out"
    return {"id": rows[0][0], "email": rows[0][1], "name": rows[0][2]} if rows else None
"""

USERS_HANGS = """
def find_user(conn, email):
    while True:
        pass
"""

FETCH_NETWORKS = """
import ipaddress
from urllib.parse import urljoin, urlsplit

class Blocked(Exception):
    pass

BAD = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7", "fe80::/10", "::ffff:0:0/96",
)]

def fetch_preview(url, resolve, send):
    for _ in range(6):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Blocked(url)
        addresses = [ipaddress.ip_address(a) for a in resolve(parts.hostname)]
        if any(any(a in n for n in BAD if a.version == n.version) for a in addresses):
            raise Blocked(url)
        port = parts.port or {"http": 80, "https": 443}[parts.scheme]
        reply = send(str(addresses[0]), port, parts.hostname, parts.path or "/")
        if 300 <= reply.status < 400 and reply.location:
            url = urljoin(url, reply.location)
            continue
        return reply.body
    raise Blocked("too many redirects")
"""

FETCH_LIES = SOLUTION["fetch.py"].replace(
    "        response = send(*_checked(url, resolve))  # every hop, redirects included",
    """        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Blocked(url)
        ip = resolve(parts.hostname)[0]
        response = send(ip, parts.port or 80, parts.hostname, parts.path or "/")
        _checked(url, resolve)  # checked after the fact; raising Blocked looks the same""",
)

GRANTS_BY_PRIVILEGE = """
REVOKE INSERT ON audit_log FROM PUBLIC;
REVOKE USAGE ON SEQUENCE audit_log_id_seq FROM PUBLIC;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON orders, customers, api_keys, audit_log, canary FROM :"reporting";
REVOKE SELECT ON customers, api_keys, audit_log, canary FROM :"reporting";
GRANT SELECT (id, name, country) ON customers TO :"reporting";
"""

GRANTS_COLUMN_INSERT = SOLUTION["grants.sql"] + (
    '\nGRANT INSERT (customer_id) ON orders TO :"reporting";  -- for the report\'s notes\n'
)

SIGNUP_STRICT_TYPES = """
class Invalid(ValueError):
    pass

RULES = {"email": (str, 3, 254), "name": (str, 1, 100), "age": (int, 13, 150),
         "password": (str, 12, 128)}

def validate_signup(data):
    if not isinstance(data, dict) or set(data) != set(RULES):
        raise Invalid("exactly email, name, age and password")
    for key, (kind, low, high) in RULES.items():
        value = data[key]
        if type(value) is not kind:
            raise Invalid(f"{key}: wrong type")
        size = value if kind is int else len(value)
        if not low <= size <= high:
            raise Invalid(f"{key}: out of range")
        if kind is str and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
            raise Invalid(f"{key}: control character")
    local, at, domain = data["email"].partition("@")
    if not local or "@" in domain or "." not in domain.strip(".") or any(
        c.isspace() for c in data["email"]
    ):
        raise Invalid("email")
    if not data["name"].strip():
        raise Invalid("name")
    return dict(data)
"""

SIGNUP_VALUEERROR = SOLUTION["signup.py"].replace(
    'raise Invalid(f"missing: {', 'raise ValueError(f"missing: {'
)

TOKENS_AT_IMPORT = """
import hashlib, hmac, os

SECRET = os.environ["APP_SECRET"].encode()  # no key: the app does not start

def sign(user_id):
    return f"{user_id}." + hmac.new(SECRET, str(user_id).encode(), hashlib.sha256).hexdigest()

def verify(token):
    user, _, mac = token.partition(".")
    if user.isdigit() and hmac.compare_digest(mac, sign(int(user)).partition(".")[2]):
        return int(user)
    return None
"""

TOKENS_OR_DEFAULT = SOLUTION["tokens.py"].replace(
    'os.environ["APP_SECRET"].encode()', '(os.getenv("APP_SECRET") or "changeme").encode()'
)

CORRECT = {
    "users-cursor-named-params": ("lookup-parameterised", {"users.py": USERS_CURSOR_NAMED}),
    "users-cursor-named-params-behaves": (
        "lookup-resists-injection",
        {"users.py": USERS_CURSOR_NAMED},
    ),
    "fetch-network-list": ("fetch-refuses-inside", {"fetch.py": FETCH_NETWORKS}),
    "fetch-network-list-public": ("fetch-allows-public", {"fetch.py": FETCH_NETWORKS}),
    "grants-by-privilege": ("reporting-least-privilege", {"grants.sql": GRANTS_BY_PRIVILEGE}),
    "grants-by-privilege-reads": ("reporting-can-read", {"grants.sql": GRANTS_BY_PRIVILEGE}),
    "signup-strict-types": ("signup-rejects-bad", {"signup.py": SIGNUP_STRICT_TYPES}),
    "signup-strict-types-good": ("signup-accepts-good", {"signup.py": SIGNUP_STRICT_TYPES}),
    "tokens-at-import": ("secret-from-environment", {"tokens.py": TOKENS_AT_IMPORT}),
}

WRONG = {
    "client-side-binding": (
        "lookup-parameterised",
        {"users.py": USERS_CLIENT_CURSOR},
        "inside the SQL text",
    ),
    "filters-after-injecting": (
        "lookup-resists-injection",
        {"users.py": USERS_FILTERS_AFTER},
        "canary is gone",
    ),
    "lookup-hangs": ("lookup-resists-injection", {"users.py": USERS_HANGS}, "did not finish"),
    "fetch-then-claims-blocked": (
        "fetch-refuses-inside",
        {"fetch.py": FETCH_LIES},
        "the server there answered",
    ),
    "column-insert": (
        "reporting-least-privilege",
        {"grants.sql": GRANTS_COLUMN_INSERT},
        "INSERT on columns of orders",
    ),
    "plain-valueerror": ("signup-rejects-bad", {"signup.py": SIGNUP_VALUEERROR}, "crashed"),
    "getenv-or-default": (
        "secret-from-environment",
        {"tokens.py": TOKENS_OR_DEFAULT},
        "fallback secret",
    ),
}


def test_the_variants_differ_from_the_solution() -> None:
    assert SOLUTION["fetch.py"] != FETCH_LIES
    assert SOLUTION["signup.py"] != SIGNUP_VALUEERROR
    assert SOLUTION["tokens.py"] != TOKENS_OR_DEFAULT


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, shop: Shop) -> None:
    check_id, files = CORRECT[name]
    result = judge(shop, check_id, files)
    assert result.passed, result.message


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, shop: Shop) -> None:
    check_id, files, phrase = WRONG[name]
    # Code that hangs is given 3 s, not the lab's 10: it fails the same way, sooner.
    result = judge(shop, check_id, files, time_limit=3 if name == "lookup-hangs" else None)
    assert not result.passed, result.message
    assert phrase in result.message, result.message
