"""Lab 3 (API design): answers the proof's cases do not hold, judged right on a real server.

Other correct answers must pass: idempotency by an advisory lock, by a unique column on
orders, by a key claimed first that answers 409 while its twin is still running, or by a
plain INSERT whose losers catch the unique violation and replay; a cursor on the id alone,
an absolute next link or a bare `?cursor=` one, a limit past the cap refused; customers
joined, or the page and its customers built in one statement; problem documents with
extra members, a charset, or the refused field's name; an absolute Location; a keys table
whose foreign key holds on to orders the walk would delete; a service that logs loudly.
Other wrong ones must fail and say why: a service that hangs on a key, streams a page
without end, never commits, or whose Location lies; one that cancels nothing; a lock that
guards only its own process; race losers that answer with an error; a replay that says
200; problems whose status is a string; pages without a cap, a `<=` cursor, oldest
first, a next link that loops; fields that are ignored, a secret under another name, a
cancel that answers with every column. Each variant is judged on one check, on a fresh
copy of a database seeded once for this module; the proof runs in test_lab_proofs.
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
from sdtutor.services import postgres
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "03-api-design"
SOLUTION = (LAB_DIR / "solution" / "app.py").read_text()


@dataclasses.dataclass
class Seeded:
    server: str  # the machine's PostgreSQL, as its admin
    template: str  # a database seeded once, copied for each judgement


@pytest.fixture(scope="module")
def seeded(system_postgres: str) -> Iterator[Seeded]:
    name = f"sdtutor_test_api_{secrets.token_hex(3)}"
    postgres.create_database(system_postgres, name)
    try:
        postgres.run_setup(postgres.with_database(system_postgres, name), LAB_DIR / "setup.sql")
        yield Seeded(system_postgres, name)
    finally:
        postgres.drop_database(system_postgres, name)


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    return load_lab(LAB_DIR)


def judge(lab: LabSpec, seeded: Seeded, check_id: str, app: str) -> CheckResult:
    """One check, on a fresh copy of the seeded data, with `app` as the workspace's app.py."""
    only = dataclasses.replace(lab, checks=tuple(c for c in lab.checks if c.id == check_id))
    name = f"sdtutor_test_api_{secrets.token_hex(3)}"
    postgres.create_database(seeded.server, name, template=seeded.template)
    try:
        with tempfile.TemporaryDirectory(prefix="sdtutor-lab03-") as tmp:
            workspace = Path(tmp)
            shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
            (workspace / "app.py").write_text(app)
            [result] = run_checks(
                only, workspace, {"postgres": postgres.with_database(seeded.server, name)}
            )
    finally:
        postgres.drop_database(seeded.server, name)
    return result


def variant(*edits: tuple[str, str]) -> str:
    """The solution's app.py with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION
    for old, new in edits:
        assert old in text, f"the solution's app.py no longer has {old!r}"
        text = text.replace(old, new)
    return text


def with_create(body: str) -> str:
    """The solution with create_order's body after validation replaced by `body`."""
    start = SOLUTION.index("    with db() as conn, conn.transaction(), conn.cursor(row_factory")
    end = SOLUTION.index("def cancel_order(")
    return SOLUTION[:start] + body + "\n\n" + SOLUTION[end:]


# ------------------------------------------------------------------ correct other ways

ADVISORY_LOCK = """
    with db() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if key is not None:
            # One request per key at a time, across every process: the lock is PostgreSQL's.
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            seen = cur.execute(
                "SELECT request_hash, status, body, location FROM idempotency_keys"
                " WHERE key = %s",
                (key,),
            ).fetchone()
            if seen is not None:
                if seen["request_hash"] != request_hash:
                    raise Problem(422, "Key reused", "another body", "/problems/key-reused")
                return seen["status"], seen["body"], seen["location"]
        if cur.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone() is None:
            raise Problem(422, "Invalid order", "no such customer", "/problems/invalid-order")
        row = cur.execute(
            "INSERT INTO orders (customer_id, total) VALUES (%s, %s)"
            " RETURNING id, customer_id, status, total, created_at",
            (customer_id, total),
        ).fetchone()
        body = {f: json_value(row[f]) for f in ORDER_FIELDS}
        location = f"/orders/{row['id']}"
        if key is not None:
            cur.execute(
                "INSERT INTO idempotency_keys (key, request_hash, status, body, location)"
                " VALUES (%s, %s, 201, %s, %s)",
                (key, request_hash, json.dumps(body), location),
            )
    return 201, body, location"""

# The key lives on the order itself, unique; the replay is rebuilt from the order.
UNIQUE_COLUMN = '''
    with db() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if cur.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone() is None:
            raise Problem(422, "Invalid order", "no such customer", "/problems/invalid-order")
        row = cur.execute(
            "INSERT INTO orders (customer_id, total, idempotency_key, request_hash)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING"
            " RETURNING id, customer_id, status, total, created_at",
            (customer_id, total, key, request_hash),
        ).fetchone()
        if row is None:
            row = cur.execute(
                "SELECT id, customer_id, status, total, created_at, request_hash FROM orders"
                " WHERE idempotency_key = %s",
                (key,),
            ).fetchone()
            if row["request_hash"] != request_hash:
                raise Problem(409, "Key reused", "another body", "/problems/key-reused")
    return 201, {f: json_value(row[f]) for f in ORDER_FIELDS}, f"/orders/{row['id']}"'''

UNIQUE_COLUMN_SCHEMA = (
    '''        conn.execute(
            """CREATE TABLE IF NOT EXISTS idempotency_keys (''',
    '''        conn.execute(
            "ALTER TABLE orders ADD COLUMN IF NOT EXISTS idempotency_key text UNIQUE,"
            " ADD COLUMN IF NOT EXISTS request_hash text"
        )
        conn.execute(
            """CREATE TABLE IF NOT EXISTS idempotency_keys (''',
)

# The key is claimed (and committed) first; a twin that finds it unfinished gets 409.
CLAIM_THEN_409 = """
    with db() as conn, conn.cursor(row_factory=dict_row) as cur:
        if key is not None:
            claimed = cur.execute(
                "INSERT INTO idempotency_keys (key, request_hash) VALUES (%s, %s)"
                " ON CONFLICT (key) DO NOTHING RETURNING key",
                (key, request_hash),
            ).fetchone()
            if claimed is None:
                seen = cur.execute(
                    "SELECT request_hash, status, body, location FROM idempotency_keys"
                    " WHERE key = %s",
                    (key,),
                ).fetchone()
                if seen["request_hash"] != request_hash:
                    raise Problem(409, "Key reused", "another body", "/problems/key-reused")
                if seen["status"] is None:
                    raise Problem(409, "In progress", "the first request is still running")
                return seen["status"], seen["body"], seen["location"]
        try:
            with conn.transaction():
                if cur.execute(
                    "SELECT 1 FROM customers WHERE id = %s", (customer_id,)
                ).fetchone() is None:
                    raise Problem(422, "Invalid order", "no such customer", "/problems/x")
                row = cur.execute(
                    "INSERT INTO orders (customer_id, total) VALUES (%s, %s)"
                    " RETURNING id, customer_id, status, total, created_at",
                    (customer_id, total),
                ).fetchone()
                body = {f: json_value(row[f]) for f in ORDER_FIELDS}
                location = f"/orders/{row['id']}"
                if key is not None:
                    cur.execute(
                        "UPDATE idempotency_keys SET status = 201, body = %s, location = %s"
                        " WHERE key = %s",
                        (json.dumps(body), location, key),
                    )
        except BaseException:
            if key is not None:
                cur.execute("DELETE FROM idempotency_keys WHERE key = %s", (key,))
            raise
    return 201, body, location"""

CURSOR_BRANCH = """        if query.get("cursor"):
            after = decode_cursor(query["cursor"])
            cur.execute(
                f"{SELECT_ORDER} WHERE (created_at, id) < (%s, %s)"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (*after, limit + 1),
            )
        else:
            cur.execute(f"{SELECT_ORDER} ORDER BY created_at DESC, id DESC LIMIT %s", (limit + 1,))
"""

ID_CURSOR = variant(
    (
        CURSOR_BRANCH,
        """        after = int(query.get("after", 2**62))
        cur.execute(
            f"{SELECT_ORDER} WHERE id < %s ORDER BY id DESC LIMIT %s", (after, limit + 1)
        )
""",
    ),
    (
        'params = {"limit": limit, "cursor": encode_cursor(page[-1])}',
        'params = {"limit": limit, "after": page[-1]["id"]}',
    ),
)

ABSOLUTE_NEXT = variant(
    (
        'next_link = "/orders?" + urlencode(params)',
        'next_link = "http://{host}/orders?" + urlencode(params)',
    ),
    (
        "            self._answer(lambda: list_orders(query))",
        "            self._answer(lambda: absolute(list_orders(query), self.headers['Host']))",
    ),
    (
        "class Handler(BaseHTTPRequestHandler):",
        "def absolute(answer: Any, host: str) -> Any:\n"
        "    status, body = answer\n"
        '    if body.get("next"):\n'
        '        body["next"] = body["next"].replace("{host}", host)\n'
        "    return status, body\n\n\n"
        "class Handler(BaseHTTPRequestHandler):",
    ),
)

JOINED = variant(
    (
        """        ids = sorted({r["customer_id"] for r in rows})
        columns = ", ".join(dict.fromkeys(["id", *wanted]))  # names from CUSTOMER_FIELDS only
        with conn.cursor(row_factory=dict_row) as cur:
            for c in cur.execute(f"SELECT {columns} FROM customers WHERE id = ANY(%s)", (ids,)):
                customers[c["id"]] = c""",
        """        order_ids = [r["id"] for r in rows]
        with conn.cursor(row_factory=dict_row) as cur:
            for c in cur.execute(
                "SELECT c.id, c.name, c.email FROM orders o JOIN customers c"
                " ON c.id = o.customer_id WHERE o.id = ANY(%s)",
                (order_ids,),
            ):
                customers[c["id"]] = c""",
    ),
)

RICH_PROBLEMS = variant(
    (
        '            "detail": self.detail,\n',
        '            "detail": self.detail,\n'
        '            "instance": "/errors/1",\n'
        '            "errors": [{"pointer": "/total"}],\n',
    ),
    (
        'content_type="application/problem+json"',
        'content_type="application/problem+json; charset=utf-8"',
    ),
)

# Losers of the race hit the primary key, roll back and replay what the winner stored.
UNIQUE_VIOLATION = """
    if key is not None:
        try:
            with db() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    "INSERT INTO idempotency_keys (key, request_hash) VALUES (%s, %s)",
                    (key, request_hash),
                )
                return store(cur, *insert_order(cur, customer_id, total), key)
        except psycopg.errors.UniqueViolation:
            with db() as conn, conn.cursor(row_factory=dict_row) as cur:
                seen = cur.execute(
                    "SELECT request_hash, status, body, location FROM idempotency_keys"
                    " WHERE key = %s",
                    (key,),
                ).fetchone()
            if seen["request_hash"] != request_hash:
                raise Problem(422, "Key reused", "another body", "/problems/key-reused")
            return seen["status"], seen["body"], seen["location"]
    with db() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        return insert_order(cur, customer_id, total)


def insert_order(cur: Any, customer_id: int, total: Decimal) -> tuple[int, dict, str]:
    if cur.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,)).fetchone() is None:
        raise Problem(422, "Invalid order", "no such customer", "/problems/invalid-order")
    row = cur.execute(
        "INSERT INTO orders (customer_id, total) VALUES (%s, %s)"
        " RETURNING id, customer_id, status, total, created_at",
        (customer_id, total),
    ).fetchone()
    return 201, {f: json_value(row[f]) for f in ORDER_FIELDS}, f"/orders/{row['id']}"


def store(cur: Any, status: int, body: dict, location: str, key: str) -> tuple[int, dict, str]:
    cur.execute(
        "UPDATE idempotency_keys SET status = %s, body = %s, location = %s WHERE key = %s",
        (status, json.dumps(body), location, key),
    )
    return status, body, location"""

# The next link is a bare query: the client resolves it against the page it came in.
QUERY_ONLY_NEXT = variant(
    ('next_link = "/orders?" + urlencode(params)', 'next_link = "?" + urlencode(params)')
)

# A 422 for a refused field names it in an extension member: a name, not a leak.
NAMES_REFUSED_FIELD = variant(
    (
        """            raise Problem(
                422, "Unknown field", f"'{name}' is not a field of an order", "/problems/fields"
            )""",
        """            problem = Problem(
                422, "Unknown field", f"'{name}' is not a field of an order", "/problems/fields"
            )
            problem.extra = {"invalid_fields": [name]}
            raise problem""",
    ),
    (
        '            "detail": self.detail,\n        }',
        '            "detail": self.detail,\n            **getattr(self, "extra", {}),\n        }',
    ),
)

# The page and its customers in one statement, the JSON built by PostgreSQL.
ONE_STATEMENT = variant(
    (
        """    customers: dict[int, dict[str, Any]] = {}
    if wanted and rows:""",
        """    customers: dict[int, dict[str, Any]] = {}
    if wanted and rows and all("customer" in r for r in rows):
        customers = {r["customer_id"]: r["customer"] for r in rows}
    elif wanted and rows:""",
    ),
    (
        'cur.execute(f"{SELECT_ORDER} ORDER BY created_at DESC, id DESC LIMIT %s", (limit + 1,))',
        """cur.execute(
                "SELECT o.id, o.customer_id, o.status, o.total, o.created_at,"
                " json_build_object('id', c.id, 'name', c.name, 'email', c.email) AS customer"
                " FROM orders o JOIN customers c ON c.id = o.customer_id"
                " ORDER BY o.created_at DESC, o.id DESC LIMIT %s",
                (limit + 1,),
            )""",
    ),
)


# A limit past the cap is refused with a problem, rather than quietly cut.
REFUSES_BIG_LIMIT = variant(
    (
        '        limit = min(max(int(query.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)',
        '        limit = max(int(query.get("limit", DEFAULT_LIMIT)), 1)\n'
        "        if limit > MAX_LIMIT:\n"
        '            raise Problem(422, "Bad limit", f"limit is at most {MAX_LIMIT}")',
    )
)

# The Location is absolute, built from the Host the client used.
ABSOLUTE_LOCATION = variant(
    (
        "            self._send(status, body, location=location)",
        "            self._send(status, body, location=f\"http://{self.headers['Host']}{location}\")",
    )
)

# The keys table points at the orders it made (a foreign key), and holds keys of orders
# made by earlier runs: the walk's deletions must work around them.
KEYS_REFERENCE_ORDERS = variant(
    (
        '                   created_at   timestamptz NOT NULL DEFAULT now())"""\n        )',
        "                   created_at   timestamptz NOT NULL DEFAULT now(),\n"
        '                   order_id     bigint REFERENCES orders (id))"""\n        )\n'
        "        conn.execute(\n"
        '            "INSERT INTO idempotency_keys (key, request_hash, status, order_id)"\n'
        "            \" SELECT 'earlier-' || id, '', 201, id FROM orders\"\n"
        '            " ORDER BY created_at DESC, id DESC LIMIT 60 ON CONFLICT DO NOTHING"\n'
        "        )",
    )
)

# Logs every request, loudly (4 kB a line): the output is kept short, the service runs on.
CHATTY = variant(
    (
        "        pass  # one line per request would drown the logs",
        '        print(format % args, "x" * 4000, flush=True)',
    )
)

CORRECT: dict[str, tuple[str, str]] = {
    "advisory-lock": ("idempotency", with_create(ADVISORY_LOCK)),
    "unique-column-on-orders": (
        "idempotency",
        with_create(UNIQUE_COLUMN).replace(*UNIQUE_COLUMN_SCHEMA),
    ),
    "claim-then-409-in-flight": ("idempotency", with_create(CLAIM_THEN_409)),
    "cursor-on-id": ("pagination", ID_CURSOR),
    "absolute-next-link": ("pagination", ABSOLUTE_NEXT),
    "customers-joined": ("field-selection", JOINED),
    "problems-with-extensions": ("status-codes", RICH_PROBLEMS),
    "unique-violation-then-replay": ("idempotency", with_create(UNIQUE_VIOLATION)),
    "next-link-a-bare-query": ("pagination", QUERY_ONLY_NEXT),
    "refused-field-named-in-problem": ("field-selection", NAMES_REFUSED_FIELD),
    "page-and-customers-one-statement": ("field-selection", ONE_STATEMENT),
    "big-limit-refused": ("pagination", REFUSES_BIG_LIMIT),
    "absolute-location": ("status-codes", ABSOLUTE_LOCATION),
    "keys-reference-orders": ("pagination", KEYS_REFERENCE_ORDERS),
    "logs-every-request-loudly": ("pagination", CHATTY),
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, lab: LabSpec, seeded: Seeded) -> None:
    check_id, app = CORRECT[name]
    result = judge(lab, seeded, check_id, app)
    assert result.passed, result.message


# ------------------------------------------------------------------ wrong other ways

# A lock in the process: safe on one process, not across two.
PROCESS_LOCK = with_create(
    ADVISORY_LOCK.replace(
        '            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"'
        ", (key,))\n",
        "",
    ).replace("    with db() as conn,", "    with _lock, db() as conn,")
).replace("POOL_SIZE = 10\n", "POOL_SIZE = 10\n_lock = threading.Lock()\n")

# Looks the key up first (a retry after the first finished is replayed), then inserts it
# with a plain INSERT: racing losers wait on the key, hit the unique violation and answer
# with the error (the connection dropped) instead of the stored answer.
LOSERS_FAIL = """
    if key is not None:
        with db() as conn, conn.cursor(row_factory=dict_row) as cur:
            seen = cur.execute(
                "SELECT request_hash, status, body, location FROM idempotency_keys"
                " WHERE key = %s",
                (key,),
            ).fetchone()
        if seen is not None:
            if seen["request_hash"] != request_hash:
                raise Problem(422, "Key reused", "another body", "/problems/key-reused")
            return seen["status"], seen["body"], seen["location"]""" + UNIQUE_VIOLATION.replace(
    "        except psycopg.errors.UniqueViolation:",
    "        except psycopg.errors.QueryCanceled:",
)


# The creating request writes in a transaction it never commits.
NEVER_COMMITS = """
    if cur_customer_missing(customer_id):
        raise Problem(422, "Invalid order", "no such customer", "/problems/invalid-order")
    conn = psycopg.connect(DATABASE_URL)  # not autocommit, and no commit below
    row = conn.execute(
        "INSERT INTO orders (customer_id, total) VALUES (%s, %s)"
        " RETURNING id, customer_id, status, total, created_at",
        (customer_id, total),
    ).fetchone()
    conn.close()
    body = dict(zip(ORDER_FIELDS, map(json_value, row)))
    return 201, body, f"/orders/{body['id']}"


def cur_customer_missing(customer_id: int) -> bool:
    with db() as conn:
        found = conn.execute("SELECT 1 FROM customers WHERE id = %s", (customer_id,))
        return found.fetchone() is None"""

# Streams the list without end: the checker must give up, not hang or fill its memory.
ENDLESS_LIST = variant(
    (
        "            self._answer(lambda: list_orders(query))",
        "            self.send_response(200)\n"
        '            self.send_header("Content-Type", "application/json")\n'
        "            self.end_headers()\n"
        "            while True:\n"
        "                self.wfile.write(b'[0,' * 20000)",
    )
)

WRONG: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # Never answers a request that carries a key.
    "hangs-on-a-key": (
        "idempotency",
        variant(
            (
                "    customer_id, total = validate(data)\n    request_hash",
                "    customer_id, total = validate(data)\n"
                "    if key is not None:\n"
                "        threading.Event().wait()\n"
                "    request_hash",
            )
        ),
        ("no answer",),
    ),
    "does-not-start": (
        "status-codes",
        SOLUTION.replace("def list_orders(", "def list_orders(("),
        ("did not start",),
    ),
    "lock-in-one-process": ("idempotency", PROCESS_LOCK, ("at once",)),
    "location-lies": (
        "status-codes",
        variant(("location = f\"/orders/{row['id']}\"", 'location = "/orders/latest"')),
        ("location header",),
    ),
    "refuses-every-cancel": (
        "status-codes",
        variant(("WHERE id = %s AND status <> 'shipped'", "WHERE id = %s AND false")),
        ("has not shipped",),
    ),
    "no-page-cap": (
        "pagination",
        variant(
            (
                'min(max(int(query.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)',
                'max(int(query.get("limit", DEFAULT_LIMIT)), 1)',
            )
        ),
        ("cap the page size",),
    ),
    "created-at-cursor-inclusive": (
        "pagination",
        variant(
            (
                CURSOR_BRANCH,
                """        if query.get("cursor"):
            cur.execute(
                f"{SELECT_ORDER} WHERE created_at <= %s ORDER BY created_at DESC, id DESC"
                " LIMIT %s",
                (datetime.fromisoformat(query["cursor"]), limit + 1),
            )
        else:
            cur.execute(f"{SELECT_ORDER} ORDER BY created_at DESC, id DESC LIMIT %s", (limit + 1,))
""",
            ),
            ('"cursor": encode_cursor(page[-1])', '"cursor": page[-1]["created_at"].isoformat()'),
        ),
        ("share its created_at",),
    ),
    "fields-ignored": (
        "field-selection",
        variant(("    if not raw:\n        return DEFAULT_FIELDS", "    return DEFAULT_FIELDS")),
        ("not exactly id, total and customer",),
    ),
    # Hides the hash under an innocent name: the value is still a secret.
    "secret-under-another-name": (
        "field-selection",
        variant(
            (
                'CUSTOMER_FIELDS = ("id", "name", "email")',
                'CUSTOMER_FIELDS = ("id", "name", "email", "pw")',
            ),
            (
                "SELECT {columns} FROM customers",
                "SELECT {columns.replace('pw', 'password_hash AS pw')} FROM customers",
            ),
        ),
        ("a secret column's value",),
    ),
    # UPDATE ... RETURNING * gives the staff's note to whoever cancels.
    "cancel-returns-every-column": (
        "field-selection",
        variant(
            (
                '            " RETURNING id, customer_id, status, total, created_at",\n'
                "            (order_id,),\n"
                "        ).fetchone()\n"
                "        if row is not None:\n"
                "            return 200, {f: json_value(row[f]) for f in ORDER_FIELDS}",
                '            " RETURNING *",\n'
                "            (order_id,),\n"
                "        ).fetchone()\n"
                "        if row is not None:\n"
                "            return 200, {f: json_value(v) for f, v in row.items()}",
            )
        ),
        ("internal_note",),
    ),
    "endless-list": ("pagination", ENDLESS_LIST, ("no answer", "past")),
    "race-losers-get-an-error": ("idempotency", with_create(LOSERS_FAIL), ("loses the race",)),
    "never-commits": ("status-codes", with_create(NEVER_COMMITS), ("not committed",)),
    "cursor-inclusive": (
        "pagination",
        variant(("WHERE (created_at, id) < (%s, %s)", "WHERE (created_at, id) <= (%s, %s)")),
        ("strictly after",),
    ),
    "next-link-loops": (
        "pagination",
        variant(('next_link = "/orders?" + urlencode(params)', 'next_link = "/orders?limit=25"')),
        ("loops",),
    ),
    "oldest-first": (
        "pagination",
        variant(
            ("WHERE (created_at, id) < (%s, %s)", "WHERE (created_at, id) > (%s, %s)"),
            ("ORDER BY created_at DESC, id DESC", "ORDER BY created_at, id"),
        ),
        ("not newest first",),
    ),
    # The replay says 200 where the first answer said 201.
    "replay-says-200": (
        "idempotency",
        variant(('return seen["status"], seen["body"]', 'return 200, seen["body"]')),
        ("the first answer back",),
    ),
    # The problem's status member is a string, not the number the status line carries.
    "problem-status-a-string": (
        "status-codes",
        variant(('            "status": self.status,', '            "status": str(self.status),')),
        ('"status" is "404"',),
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, lab: LabSpec, seeded: Seeded) -> None:
    check_id, app, says = WRONG[name]
    result = judge(lab, seeded, check_id, app)
    assert not result.passed and result.status != "error", result.message
    for phrase in says:
        assert phrase in result.message.lower(), result.message
