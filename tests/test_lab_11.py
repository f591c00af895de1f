"""The event-driven lab judges behaviour at the server, so other correct answers pass.

Each answer below differs from the reference solution in how it is written (another
constraint, another guard, another projection, another saga loop), or is wrong in a way
wrong/ does not hold. Each runs only the checks it is about, on its own fresh copy of the
seeded data, applied as a login that is NOT a superuser: a superuser ignores privileges,
and one of the lab's answers is a REVOKE. The lab's own database role is made the same
way sdtutor makes it (NOSUPERUSER NOCREATEDB NOCREATEROLE, owner of its database).
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
from sdtutor.lab.checks import run_checks
from sdtutor.lab.results import CheckResult
from sdtutor.services import postgres
from tests.conftest import REPO

LAB = REPO / "labs" / "11-event-driven"
SOLUTION = {p.name: p.read_text() for p in (LAB / "solution").iterdir()}
CHECKPOINT = """
CREATE TABLE projection_checkpoint (name text PRIMARY KEY, position bigint NOT NULL);
INSERT INTO projection_checkpoint VALUES ('account_balances', 0);
"""
APPEND_BODY = SOLUTION["events.py"][
    SOLUTION["events.py"].index("    import psycopg\n\n    version") : SOLUTION["events.py"].index(
        "\n\n\n# One statement"
    )
]
PROJECTION = SOLUTION["events.py"][SOLUTION["events.py"].index("# One statement applies") :]
SAGA_BODY = SOLUTION["saga.py"][SOLUTION["saga.py"].index("    done = []") :]


BY_STREAM_VERSION = """\
def catch_up(db):
    with db.transaction():
        db.execute("LOCK TABLE account_balances IN EXCLUSIVE MODE")
        cur = db.execute(
            "INSERT INTO account_balances AS b (account_id, balance, version) "
            "SELECT e.account_id, sum(CASE e.kind WHEN 'deposited' THEN e.amount "
            "WHEN 'withdrawn' THEN -e.amount ELSE 0 END), max(e.version) "
            "FROM account_events e LEFT JOIN account_balances o USING (account_id) "
            "WHERE e.version > coalesce(o.version, 0) GROUP BY e.account_id "
            "ON CONFLICT (account_id) DO UPDATE "
            "SET balance = b.balance + EXCLUDED.balance, version = EXCLUDED.version"
        )
        return cur.rowcount


def rebuild(db):
    with db.transaction():
        db.execute("TRUNCATE account_balances")
        return catch_up(db)
"""
ROW_BY_ROW = """\
def catch_up(db):
    with db.transaction():
        done = db.execute(
            "SELECT position FROM projection_checkpoint "
            "WHERE name = 'account_balances' FOR UPDATE"
        ).fetchone()[0]
        events = db.execute(
            "SELECT position, account_id, version, kind, amount "
            "FROM account_events WHERE position > %s ORDER BY position",
            (done,),
        ).fetchall()
        for position, account_id, version, kind, amount in events:
            db.execute(
                "INSERT INTO account_balances VALUES (%s, %s, %s) "
                "ON CONFLICT (account_id) DO UPDATE SET version = EXCLUDED.version, "
                "balance = account_balances.balance + EXCLUDED.balance",
                (account_id, SIGN[kind] * amount, version),
            )
            done = position
        db.execute(
            "UPDATE projection_checkpoint SET position = %s WHERE name = 'account_balances'",
            (done,),
        )
    return len(events)


def rebuild(db):
    with db.transaction():
        db.execute("DELETE FROM account_balances")
        db.execute("UPDATE projection_checkpoint SET position = 0")
        return catch_up(db)
"""


def edit(name: str, *edits: tuple[str, str]) -> str:
    """A solution file with each (old, new) made; every `old` must be there."""
    text = SOLUTION[name]
    for old, new in edits:
        assert old in text, f"solution/{name} no longer has {old!r}"
        text = text.replace(old, new)
    return text


APPEND_CHECKS = ["versions-unique", "stale-append-refused", "one-append-wins"]
PROJECTION_CHECKS = ["projection-catch-up", "projection-rebuild"]
SAGA_CHECKS = ["saga-compensates-in-reverse", "saga-only-what-ran"]

# ------------------------------------------------------------------ correct ways

CORRECT: dict[str, tuple[dict[str, str], list[str]]] = {
    # A unique index, columns the other way round; history guarded by privileges.
    "unique-index-and-revoke": (
        {
            "events.sql": "CREATE UNIQUE INDEX ON account_events (version, account_id);\n"
            "REVOKE UPDATE, DELETE, TRUNCATE ON account_events FROM CURRENT_USER;\n" + CHECKPOINT
        },
        [*APPEND_CHECKS, "events-immutable"],
    ),
    # Row rules swallow UPDATE and DELETE (the event stays as it was) and a statement
    # trigger refuses TRUNCATE: no event changes, which is what is judged.
    "rules-and-truncate-trigger": (
        {
            "events.sql": "ALTER TABLE account_events ADD UNIQUE (account_id, version);\n"
            "CREATE RULE no_update AS ON UPDATE TO account_events DO INSTEAD NOTHING;\n"
            "CREATE RULE no_delete AS ON DELETE TO account_events DO INSTEAD NOTHING;\n"
            "CREATE FUNCTION no() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no'; END $$;\n"
            "CREATE TRIGGER no_truncate BEFORE TRUNCATE ON account_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION no();\n" + CHECKPOINT
        },
        ["events-immutable"],
    ),
    # ON CONFLICT DO NOTHING: no row back means the version was taken.
    "append-on-conflict-do-nothing": (
        {
            "events.py": edit(
                "events.py",
                (
                    APPEND_BODY,
                    "    row = db.execute(\n"
                    '        "INSERT INTO account_events (account_id, version, kind, amount) "\n'
                    '        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING version",\n'
                    "        (account_id, expected_version + 1, kind, amount),\n"
                    "    ).fetchone()\n"
                    "    if row is None:\n"
                    '        raise Conflict(f"version {expected_version + 1} is taken")\n'
                    "    return row[0]",
                ),
            )
        },
        ["stale-append-refused", "one-append-wins"],
    ),
    # No checkpoint table: each stream's version in the read model says what it has seen.
    "projection-by-stream-version": (
        {
            "events.sql": "ALTER TABLE account_events ADD UNIQUE (account_id, version);\n",
            "events.py": edit(
                "events.py",
                (
                    PROJECTION,
                    BY_STREAM_VERSION,
                ),
            ),
        },
        PROJECTION_CHECKS,
    ),
    # The starter's loop over events in Python, with a checkpoint moved in the same
    # transaction.
    "projection-row-by-row": (
        {
            "events.py": edit(
                "events.py",
                (
                    PROJECTION,
                    ROW_BY_ROW,
                ),
            ),
        },
        PROJECTION_CHECKS,
    ),
    # Walk back from the failed step's index.
    "saga-walks-back-by-index": (
        {
            "saga.py": edit(
                "saga.py",
                (
                    SAGA_BODY,
                    "    for i, (step, _) in enumerate(STEPS):\n"
                    "        try:\n"
                    "            step(db, trip_id)\n"
                    "        except travel.StepFailed:\n"
                    "            for j in range(i - 1, -1, -1):\n"
                    "                STEPS[j][1](db, trip_id)\n"
                    '            return "cancelled"\n'
                    '    return "booked"\n',
                ),
            )
        },
        SAGA_CHECKS,
    ),
    # Each step runs the rest, and undoes itself if the rest failed (recursion).
    "saga-recursive": (
        {
            "saga.py": edit(
                "saga.py",
                (
                    SAGA_BODY,
                    "    return _run(db, trip_id, STEPS)\n\n\n"
                    "def _run(db, trip_id, steps):\n"
                    "    if not steps:\n"
                    '        return "booked"\n'
                    "    (step, undo), rest = steps[0], steps[1:]\n"
                    "    try:\n"
                    "        step(db, trip_id)\n"
                    "    except travel.StepFailed:\n"
                    '        return "cancelled"\n'
                    "    outcome = _run(db, trip_id, rest)\n"
                    '    if outcome == "cancelled":\n'
                    "        undo(db, trip_id)\n"
                    "    return outcome\n",
                ),
            )
        },
        SAGA_CHECKS,
    ),
}

# ------------------------------------------------------------------ wrong ways

WRONG: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    # Rules hide UPDATE and DELETE, but nothing stops TRUNCATE.
    "rules-without-truncate": (
        {
            "events.sql": "ALTER TABLE account_events ADD UNIQUE (account_id, version);\n"
            "CREATE RULE no_update AS ON UPDATE TO account_events DO INSTEAD NOTHING;\n"
            "CREATE RULE no_delete AS ON DELETE TO account_events DO INSTEAD NOTHING;\n"
            + CHECKPOINT
        },
        ["events-immutable"],
        ["could truncate"],
    ),
    # Too much revoked: the application cannot append any more.
    "revokes-insert-too": (
        {
            "events.sql": "ALTER TABLE account_events ADD UNIQUE (account_id, version);\n"
            "REVOKE ALL ON account_events FROM CURRENT_USER;\n"
            "GRANT SELECT ON account_events TO CURRENT_USER;\n" + CHECKPOINT
        },
        ["events-immutable"],
        ["can no longer append", "insert must stay"],
    ),
    # A disabled trigger guards nothing.
    "disabled-trigger": (
        {
            "events.sql": SOLUTION["events.sql"]
            + "ALTER TABLE account_events DISABLE TRIGGER USER;\n"
        },
        ["events-immutable"],
        ["could update and delete and truncate"],
    ),
    # Compensates, then lets StepFailed escape instead of returning "cancelled".
    "saga-re-raises": (
        {
            "saga.py": edit(
                "saga.py",
                (
                    '            compensate(db, trip_id)\n        return "cancelled"',
                    "            compensate(db, trip_id)\n        raise",
                ),
            )
        },
        SAGA_CHECKS,
        ["stepfailed was not caught"],
    ),
    # Undoes only the step just before the failed one.
    "saga-undoes-one-step": (
        {
            "saga.py": edit(
                "saga.py",
                (
                    "        for compensate in reversed(done):",
                    "        for compensate in done[-1:]:",
                ),
            )
        },
        ["saga-compensates-in-reverse"],
        ["but not cancel_flight"],
    ),
    # Swallows the failure and tells the customer the trip is booked.
    "saga-says-booked": (
        {
            "saga.py": edit(
                "saga.py",
                (
                    '            compensate(db, trip_id)\n        return "cancelled"',
                    '            compensate(db, trip_id)\n        return "booked"',
                ),
            )
        },
        SAGA_CHECKS,
        ["returned 'booked'"],
    ),
    # Catches the unique violation but returns None: the loser thinks it appended.
    "append-swallows-the-conflict": (
        {
            "events.py": edit(
                "events.py",
                (
                    "        raise Conflict(\n"
                    '            f"account {account_id} is past version {expected_version}: '
                    'reload and retry"\n'
                    "        ) from None",
                    "        return None",
                ),
            )
        },
        ["stale-append-refused", "one-append-wins"],
        ["was accepted", "returned normally"],
    ),
}


# ------------------------------------------------------------------ machinery


@pytest.fixture(scope="module")
def template(system_postgres: str) -> Iterator[tuple[str, str, str]]:
    """A seeded template database owned by a plain login role; yields (admin, role, tpl)."""
    import psycopg

    token = secrets.token_hex(4)
    role, password = f"sdtutor_test_lab11_{token}", secrets.token_urlsafe(12)
    tpl = f"{role}_tpl"
    with psycopg.connect(system_postgres, autocommit=True) as conn:
        conn.execute(
            f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
            f"PASSWORD '{password}'"
        )
        conn.execute(f'CREATE DATABASE "{tpl}" OWNER "{role}"')
    try:
        url = _as(system_postgres, role, password, tpl)
        postgres.run_setup(url, LAB / "setup.sql")
        yield system_postgres, f"{role}:{password}", tpl
    finally:
        with psycopg.connect(system_postgres, autocommit=True) as conn:
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{role}%",)
            ).fetchall():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _as(admin_url: str, role: str, password: str, dbname: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(admin_url)
    return f"postgresql://{role}:{password}@{parts.hostname}:{parts.port or 5432}/{dbname}"


def fresh(template: tuple[str, str, str], events_sql: str) -> str:
    """A fresh copy of the seeded data with `events_sql` applied as the lab's login."""
    import psycopg

    admin_url, login, tpl = template
    role, password = login.split(":", 1)
    dbname = f"{role}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{tpl}" OWNER "{role}"')
    url = _as(admin_url, role, password, dbname)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(events_sql)
    return url


def judge(
    template: tuple[str, str, str], files: dict[str, str], checks: list[str], url: str = ""
) -> list[CheckResult]:
    """The solution with `files` laid over it, applied to a fresh copy, judged by `checks`."""
    url = url or fresh(template, files.get("events.sql", SOLUTION["events.sql"]))
    lab = load_lab(LAB)
    lab = dataclasses.replace(lab, checks=[c for c in lab.checks if c.id in checks])
    with tempfile.TemporaryDirectory(prefix="sdtutor-lab11-") as tmp:
        workspace = Path(tmp)
        for name in lab.workspace:
            shutil.copyfile(LAB / "starter" / name, workspace / name)
        for name, text in {**SOLUTION, **files}.items():
            (workspace / name).write_text(text)
        return run_checks(lab, workspace, {"postgres": url})


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRECT))
def test_another_correct_answer_passes(name: str, template: tuple[str, str, str]) -> None:
    files, checks = CORRECT[name]
    for result in judge(template, files, checks):
        assert result.passed, f"{result.id}: {result.message}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WRONG))
def test_another_wrong_answer_fails_and_says_why(name: str, template: tuple[str, str, str]) -> None:
    files, checks, says = WRONG[name]
    results = judge(template, files, checks)
    failed = [r for r in results if not r.passed]
    assert {r.id for r in failed} == set(checks), [(r.id, r.message) for r in results]
    assert all(r.status == "failed" for r in failed), [(r.id, r.status) for r in failed]
    text = " ".join(r.message for r in failed).lower()
    for phrase in says:
        assert phrase in text, text


@pytest.mark.slow
def test_history_survives_the_immutability_check(template: tuple[str, str, str]) -> None:
    """The check tries UPDATE, DELETE and TRUNCATE for real; it must roll them back even
    when they are allowed (the starter's events.sql, which guards nothing)."""
    import psycopg

    url = fresh(template, "SELECT 1")
    count = "SELECT count(*), sum(amount) FROM account_events"
    with psycopg.connect(url) as conn:
        before = conn.execute(count).fetchone()
    [result] = judge(template, {"events.sql": "SELECT 1"}, ["events-immutable"], url=url)
    assert not result.passed
    assert "could update and delete and truncate" in result.message.lower()
    with psycopg.connect(url) as conn:
        assert conn.execute(count).fetchone() == before
