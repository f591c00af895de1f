"""The consistency lab (16): what the engine must do for it, and other answers judged.

- The lab needs max_prepared_transactions and two PostgreSQL servers: the external
  provider refuses it before anything starts, naming the setting, and a proof on that
  provider is skipped with the reason instead of failing.
- A transaction left prepared keeps DROP DATABASE from working (FORCE or not): teardown,
  and the copy made by `lab reset`, roll back what the lab left prepared in its database.
- Other correct answers than the reference pass (a row lock, Serializable with retries,
  psycopg's two-phase commit API, a recovery that asks the banks per transfer), and
  other wrong ones fail with a message that teaches.

The lab runs on the local provider's private servers (max_prepared_transactions = 10),
started once for the module under the shared test home.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdtutor.content.loader import load_lab
from sdtutor.content.models import LabSpec
from sdtutor.lab.checks import run_checks
from sdtutor.lab.proof import skip_reason
from sdtutor.lab.results import CheckResult
from sdtutor.providers import provider_class, unsupported
from sdtutor.services.base import Target, kind
from sdtutor.services.names import Names
from tests.conftest import REPO

LAB_DIR = REPO / "labs" / "16-consistency"
SOLUTION = {p.name: p.read_text() for p in (LAB_DIR / "solution").glob("*.py")}


# ------------------------------------------------------------------ no server needed


def test_external_provider_refuses_the_lab_naming_the_setting() -> None:
    lab = load_lab(LAB_DIR)
    reason = unsupported(provider_class("external"), lab.instances)
    assert "max_prepared_transactions = 10" in reason
    assert "one server per kind" in reason
    assert unsupported(provider_class("local"), lab.instances) == ""
    assert unsupported(provider_class("docker"), lab.instances) == ""


def test_a_lab_without_settings_is_not_refused_for_settings() -> None:
    lab = load_lab(REPO / "labs" / "07-indexing")
    assert unsupported(provider_class("external"), lab.instances) == ""


def test_the_proof_is_skipped_where_the_provider_cannot_run_the_lab(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = load_lab(LAB_DIR)
    monkeypatch.delenv("SDTUTOR_PROVIDER", raising=False)
    assert skip_reason(lab) == ""  # no provider named: one that can serve is chosen
    assert skip_reason(lab, "local") == ""
    assert skip_reason(lab, "external").startswith("the external provider cannot change")
    monkeypatch.setenv("SDTUTOR_PROVIDER", "external")
    assert "max_prepared_transactions" in skip_reason(lab)
    assert skip_reason(load_lab(REPO / "labs" / "07-indexing")) == ""


# ------------------------------------------------------------------ on private servers


@dataclasses.dataclass
class Banks:
    lab: LabSpec
    targets: dict[str, Target]
    urls: dict[str, str]


@pytest.fixture(scope="module")
def banks(local_home: Path) -> Iterator[Banks]:
    """The lab's two banks on the local provider, seeded, in a namespace of this module."""
    previous = os.environ.get("SDTUTOR_HOME")
    os.environ["SDTUTOR_HOME"] = str(local_home)
    provider = provider_class("local")()
    lab = load_lab(LAB_DIR)
    slug = f"consistency-test-{secrets.token_hex(2)}"
    endpoints = provider.start(slug, lab.instances)
    names = Names.for_lab(slug)
    targets = {
        i.name: Target(endpoints[i.name].url, names, i.name, lab, endpoints[i.name].handle)
        for i in lab.instances
    }
    try:
        urls = {n: kind("postgres").provision(t, fresh=True).url for n, t in targets.items()}
        yield Banks(lab, targets, urls)
    finally:
        for target in targets.values():
            kind("postgres").teardown(target, purge=True)
        provider.stop(slug, endpoints)
        if previous is None:
            os.environ.pop("SDTUTOR_HOME", None)
        else:
            os.environ["SDTUTOR_HOME"] = previous


def _prepare(url: str, gid: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 99")
        conn.execute(f"PREPARE TRANSACTION '{gid}'")


def _prepared(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.slow
def test_a_fresh_copy_and_teardown_roll_back_what_was_left_prepared(banks: Banks) -> None:
    from sdtutor.services.postgres import PostgresKind

    target = banks.targets["bank_a"]
    _prepare(banks.urls["bank_a"], f"left-{secrets.token_hex(3)}")
    assert _prepared(banks.urls["bank_a"])
    # `lab reset` and every case of a proof copy the template over the old database.
    url = PostgresKind().provision(target, fresh=True).url
    assert _prepared(url) == []
    # `lab stop`: the database goes, prepared transaction or not.
    _prepare(url, f"left-{secrets.token_hex(3)}")
    PostgresKind().teardown(target)
    import psycopg

    with psycopg.connect(target.admin_url, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (target.names.database,)
        ).fetchone()
        assert left is not None and left[0] == 0
        assert conn.execute(
            "SELECT count(*) FROM pg_prepared_xacts WHERE database = %s",
            (target.names.database,),
        ).fetchone() == (0,)
    banks.urls["bank_a"] = PostgresKind().provision(target, fresh=True).url


def judge(banks: Banks, check_id: str, files: dict[str, str]) -> CheckResult:
    """Run one check of the lab on a workspace: the solution with `files` laid over it."""
    lab = dataclasses.replace(
        banks.lab, checks=tuple(c for c in banks.lab.checks if c.id == check_id)
    )
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab16-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB_DIR / "README.md", workspace / "README.md")
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        [result] = run_checks(lab, workspace, dict(banks.urls))
    return result


ATM_FOR_UPDATE = """
def withdraw(conn, account_id, amount):
    with conn.transaction():
        (balance,) = conn.execute(
            "SELECT balance FROM accounts WHERE id = %s FOR UPDATE", (account_id,)
        ).fetchone()
        if balance < amount:
            return False
        conn.execute("UPDATE accounts SET balance = %s WHERE id = %s",
                     (balance - amount, account_id))
    return True
"""

ATM_SERIALIZABLE_RETRY = """
import random, time
import psycopg

def withdraw(conn, account_id, amount):
    while True:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                (balance,) = conn.execute(
                    "SELECT balance FROM accounts WHERE id = %s", (account_id,)
                ).fetchone()
                if balance < amount:
                    return False
                conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s",
                             (amount, account_id))
            return True
        except psycopg.errors.SerializationFailure:
            time.sleep(random.random() * 0.02)
"""

ATM_RETURNING = """
def withdraw(conn, account_id, amount):
    row = conn.execute(
        "UPDATE accounts SET balance = balance - %s "
        "WHERE id = %s AND balance - %s >= 0 RETURNING balance",
        (amount, account_id, amount),
    ).fetchone()
    return row is not None
"""

ATM_NOWAIT = """
import psycopg

def withdraw(conn, account_id, amount):
    try:
        with conn.transaction():
            (balance,) = conn.execute(
                "SELECT balance FROM accounts WHERE id = %s FOR UPDATE NOWAIT", (account_id,)
            ).fetchone()
            if balance < amount:
                return False
            conn.execute("UPDATE accounts SET balance = %s WHERE id = %s",
                         (balance - amount, account_id))
        return True
    except psycopg.errors.LockNotAvailable:
        return False  # busy: refuse
"""

ATM_ISOLATION_ONLY = """
def withdraw(conn, account_id, amount):
    conn.execute("SET default_transaction_isolation = 'repeatable read'")
    (balance,) = conn.execute(
        "SELECT balance FROM accounts WHERE id = %s", (account_id,)
    ).fetchone()
    if balance < amount:
        return False
    conn.execute("UPDATE accounts SET balance = %s WHERE id = %s", (balance - amount, account_id))
    return True
"""

TRANSFER_TPC = '''
import psycopg

BANKS = ("bank_a", "bank_b")


def gid(transfer_id, bank):
    return f"{transfer_id}@{bank}"


def transfer_of(gid_text):
    transfer_id, _, bank = gid_text.rpartition("@")
    return transfer_id, bank


def transfer_across(bank_a, bank_b, transfer_id, from_id, to_id, amount):
    """psycopg's DB-API two-phase commit: tpc_begin / tpc_prepare / tpc_commit."""
    for conn in (bank_a, bank_b):
        conn.autocommit = False
    prepared = []
    try:
        bank_a.tpc_begin(gid(transfer_id, "bank_a"))
        cur = bank_a.execute(
            "UPDATE accounts SET balance = balance - %s WHERE id = %s AND balance >= %s",
            (amount, from_id, amount),
        )
        if cur.rowcount != 1:
            bank_a.tpc_rollback()
            return False
        bank_a.tpc_prepare()
        prepared.append(bank_a)
        bank_b.tpc_begin(gid(transfer_id, "bank_b"))
        bank_b.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, to_id))
        bank_b.tpc_prepare()
        prepared.append(bank_b)
    except psycopg.Error:
        if bank_b not in prepared:
            try:
                bank_b.tpc_rollback()  # begun and refused, or never begun
            except psycopg.Error:
                pass
        for conn in prepared:
            conn.tpc_rollback()
        return False
    bank_a.autocommit = True
    bank_a.execute("INSERT INTO decisions (transfer_id) VALUES (%s)", (transfer_id,))
    bank_a.autocommit = False
    bank_a.tpc_commit()
    bank_b.tpc_commit()
    return True
'''

RECOVER_PER_TRANSFER = '''
from psycopg import sql

from transfer import BANKS, gid, transfer_of


def recover(bank_a, bank_b):
    """Collect the stranded transfer ids from both banks, then settle each on both."""
    conns = dict(zip(BANKS, (bank_a, bank_b)))
    stranded = {}
    for bank, conn in conns.items():
        for (g,) in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
        ):
            stranded.setdefault(transfer_of(g)[0], []).append(bank)
    for transfer_id, where in stranded.items():
        decided = bank_a.execute(
            "SELECT count(*) FROM decisions WHERE transfer_id = %s", (transfer_id,)
        ).fetchone()[0]
        verb = "COMMIT PREPARED {}" if decided else "ROLLBACK PREPARED {}"
        for bank in where:
            conns[bank].execute(sql.SQL(verb).format(sql.Literal(gid(transfer_id, bank))))
'''

RECOVER_IGNORES_BANK_B = """
from psycopg import sql

from transfer import transfer_of


def recover(bank_a, bank_b):
    decided = {r[0] for r in bank_a.execute("SELECT transfer_id FROM decisions")}
    for (g,) in bank_a.execute(
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"
    ).fetchall():
        verb = "COMMIT" if transfer_of(g)[0] in decided else "ROLLBACK"
        bank_a.execute(sql.SQL(verb + " PREPARED {}").format(sql.Literal(g)))
"""

TRANSFER_COMMITS_BOTH_THEN_LOGS = SOLUTION["transfer.py"].replace(
    """    bank_a.execute("INSERT INTO decisions (transfer_id) VALUES (%s)", (transfer_id,))
    _finish(bank_a, "COMMIT", gid(transfer_id, "bank_a"))
    _finish(bank_b, "COMMIT", gid(transfer_id, "bank_b"))""",
    """    _finish(bank_b, "COMMIT", gid(transfer_id, "bank_b"))
    _finish(bank_a, "COMMIT", gid(transfer_id, "bank_a"))
    bank_a.execute("INSERT INTO decisions (transfer_id) VALUES (%s)", (transfer_id,))""",
)

CORRECT = {
    "atm-for-update": ("no-lost-update", {"atm.py": ATM_FOR_UPDATE}),
    "atm-serializable-retry": ("no-lost-update", {"atm.py": ATM_SERIALIZABLE_RETRY}),
    "atm-returning": ("no-lost-update", {"atm.py": ATM_RETURNING}),
    "transfer-tpc-api": ("all-or-nothing", {"transfer.py": TRANSFER_TPC}),
    "crash-tpc-api": ("crash-while-deciding", {"transfer.py": TRANSFER_TPC}),
    "recover-per-transfer": ("recovery", {"recover.py": RECOVER_PER_TRANSFER}),
}

WRONG = {
    "atm-nowait-refuses": ("no-lost-update", {"atm.py": ATM_NOWAIT}, "turned away"),
    # Each statement its own Repeatable Read transaction: the read and the write still
    # see different balances. Whether an UPDATE meets a concurrent one (and fails) or
    # not (and loses an update) is up to the scheduler; both verdicts teach.
    "atm-isolation-only": (
        "no-lost-update",
        {"atm.py": ATM_ISOLATION_ONLY},
        "lost update|run such a transaction again",
    ),
    "transfer-commits-then-logs": (
        "crash-while-deciding",
        {"transfer.py": TRANSFER_COMMITS_BOTH_THEN_LOGS},
        "had already committed",
    ),
    "recover-ignores-bank-b": (
        "recovery",
        {"recover.py": RECOVER_IGNORES_BANK_B},
        "still prepared",
    ),
}


def test_the_wrong_variant_differs_from_the_solution() -> None:
    assert SOLUTION["transfer.py"] != TRANSFER_COMMITS_BOTH_THEN_LOGS


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRECT))
def test_other_correct_answers_pass(name: str, banks: Banks) -> None:
    check_id, files = CORRECT[name]
    result = judge(banks, check_id, files)
    assert result.passed, result.message


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WRONG))
def test_other_wrong_answers_fail_and_say_why(name: str, banks: Banks) -> None:
    check_id, files, phrase = WRONG[name]
    result = judge(banks, check_id, files)
    assert not result.passed, result.message
    assert any(p in result.message for p in phrase.split("|")), result.message
