"""The database-selection lab judges money and documents by what PostgreSQL holds.

Beyond the proof's cases (starter, solution, wrong/), these are other ways a learner may
answer: correct ones written differently (advisory locks, a hand-written BEGIN/COMMIT,
an expression index on the jsonb value, a jsonpath query over a GIN index) must pass;
wrong ones that wrong/ does not hold (a FOR UPDATE in autocommit, code that claims
transfers it never made, an index for one colour only) must fail with a message that
says why.

The lab is seeded once into a database of this module's own on the machine's PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import secrets
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

LAB = REPO / "labs" / "02-database-selection"
MONEY = ("concurrent-transfers", "crash-mid-transfer")

# ------------------------------------------------------------------ transfers

ADVISORY = """
def transfer(conn, src, dst, cents):
    with conn.transaction():
        for key in sorted((src, dst)):
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        cur = conn.execute(
            "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s",
            (cents, src, cents),
        )
        if cur.rowcount == 0:
            return False
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
"""

MANUAL_BEGIN = """
def transfer(conn, src, dst, cents):
    cur = conn.cursor()
    try:
        cur.execute("BEGIN")
        for key in sorted((src, dst)):
            cur.execute("SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (key,))
        cur.execute("SELECT balance FROM accounts WHERE id = %s", (src,))
        if cur.fetchone()[0] < cents:
            cur.execute("ROLLBACK")
            return False
        cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
        cur.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
        cur.execute("COMMIT")
        return True
    except Exception:
        cur.execute("ROLLBACK")
        raise
"""

AUTOCOMMIT_FOR_UPDATE = """
def transfer(conn, src, dst, cents):
    row = conn.execute(
        "SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (src,)
    ).fetchone()
    if row[0] < cents:
        return False
    conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
    conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
"""

CLAIMS_ONLY = """
def transfer(conn, src, dst, cents):
    return True
"""

CONDITIONAL_IN_TRANSFER_ORDER = """
def transfer(conn, src, dst, cents):
    with conn.transaction():
        cur = conn.execute(
            "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s",
            (cents, src, cents),
        )
        if cur.rowcount == 0:
            return False
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
    return True
"""

GIVES_UP_ON_A_BUSY_ROW = """
import psycopg


def transfer(conn, src, dst, cents):
    try:
        with conn.transaction():
            rows = dict(conn.execute(
                "SELECT id, balance FROM accounts WHERE id = ANY(%s) ORDER BY id "
                "FOR UPDATE NOWAIT",
                ([src, dst],),
            ).fetchall())
            if rows[src] < cents:
                return False
            conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (cents, src))
            conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (cents, dst))
        return True
    except psycopg.errors.LockNotAvailable:
        return False
"""

CORRECT_BANKS = {"advisory-locks": ADVISORY, "manual-begin-commit": MANUAL_BEGIN}
WRONG_BANKS = {
    "for-update-in-autocommit": (
        AUTOCOMMIT_FOR_UPDATE,
        {"concurrent-transfers": "went below zero", "crash-mid-transfer": "vanished"},
    ),
    "claims-transfers-it-never-made": (
        CLAIMS_ONLY,
        {"concurrent-transfers": "do not match what transfer() reported"},
    ),
    "gives-up-on-a-busy-row": (
        GIVES_UP_ON_A_BUSY_ROW,
        {
            "concurrent-transfers": "gives up when it meets a busy row",
            "crash-mid-transfer": "without waiting",
        },
    ),
    "conditional-update-in-transfer-order": (
        CONDITIONAL_IN_TRANSFER_ORDER,
        {"concurrent-transfers": "deadlock detected"},
    ),
}

# ------------------------------------------------------------------ the catalogue

ARROW = "SELECT id FROM products WHERE attributes->>'color' = :color ORDER BY id"
CORRECT_CATALOGUES = {
    "btree-on-the-text-value": ("CREATE INDEX ON products ((attributes->>'color'))", ARROW),
    "btree-on-the-jsonb-value": (
        "CREATE INDEX ON products ((attributes->'color'))",
        "SELECT id FROM products WHERE attributes->'color' = to_jsonb(:color::text)",
    ),
    "gin-with-jsonpath": (
        "CREATE INDEX ON products USING gin (attributes jsonb_path_ops)",
        "SELECT id FROM products WHERE attributes @@ ('$.color == \"' || :color || '\"')::jsonpath",
    ),
}
WRONG_CATALOGUES = {
    "index-for-one-colour": (
        "CREATE INDEX ON products (id) WHERE attributes->>'color' = 'teal'",
        ARROW,
        "serves that one value",
    ),
    "lower-of-the-value": (
        "CREATE INDEX ON products (lower(attributes->>'color'))",
        ARROW,
        "that very expression",
    ),
}


# ------------------------------------------------------------------ machinery


@pytest.fixture(scope="module")
def database(system_postgres: str) -> Iterator[str]:
    """The lab's seeded database, for this module only; yields its URL."""
    name = f"sdtutor_test_lab02_{secrets.token_hex(4)}"
    postgres.create_database(system_postgres, name)
    try:
        url = postgres.with_database(system_postgres, name)
        postgres.run_setup(url, LAB / "setup.sql")
        yield url
    finally:
        postgres.drop_database(system_postgres, name)


def judge(database: str, checks: tuple[str, ...], files: dict[str, str]) -> list[CheckResult]:
    """Run some of the lab's checks on a workspace of the solution with `files` laid over."""
    spec = load_lab(LAB)
    lab: LabSpec = dataclasses.replace(spec, checks=[c for c in spec.checks if c.id in checks])
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab02-") as tmp:
        workspace = Path(tmp)
        for source in (LAB / "solution").iterdir():
            (workspace / source.name).write_text(source.read_text())
        for name, text in files.items():
            (workspace / name).write_text(text)
        return run_checks(lab, workspace, {"postgres": database})


def catalogue(database: str, index: str, query: str) -> CheckResult:
    """The attribute-filter check with this index made (and dropped after) and this query."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS products_attributes_gin")
        before = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
        conn.execute(index)
        try:
            [result] = judge(
                database, ("attribute-filter",), {"queries.sql": f"-- name: by_color\n{query};\n"}
            )
        finally:
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'products'"
            ).fetchall():
                if name not in before:
                    conn.execute(f'DROP INDEX "{name}"')
    return result


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", list(CORRECT_BANKS))
def test_correct_transfers_pass(name: str, database: str) -> None:
    for result in judge(database, MONEY, {"bank.py": CORRECT_BANKS[name]}):
        assert result.passed, result.message


@pytest.mark.parametrize("name", list(WRONG_BANKS))
def test_wrong_transfers_fail_and_say_why(name: str, database: str) -> None:
    code, says = WRONG_BANKS[name]
    results = {r.id: r for r in judge(database, MONEY, {"bank.py": code})}
    for check_id, phrase in says.items():
        result = results[check_id]
        assert not result.passed and result.status != "error", result.message
        assert phrase in result.message, result.message


@pytest.mark.parametrize("name", list(CORRECT_CATALOGUES))
def test_correct_catalogue_indexes_pass(name: str, database: str) -> None:
    result = catalogue(database, *CORRECT_CATALOGUES[name])
    assert result.passed, result.message


@pytest.mark.parametrize("name", list(WRONG_CATALOGUES))
def test_wrong_catalogue_indexes_fail_and_say_why(name: str, database: str) -> None:
    index, query, phrase = WRONG_CATALOGUES[name]
    result = catalogue(database, index, query)
    assert not result.passed and result.status != "error", result.message
    assert phrase in result.message, result.message
