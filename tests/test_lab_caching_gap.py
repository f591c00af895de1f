"""The caching lab's negative-cache check judges what reaches PostgreSQL, not the answer.

A learner's get_product can return None for a missing id in many ways; the check counts
the statements that reached the server for repeated lookups of a missing id (one past
the seeded ids, one of a product it deletes for a moment). A correct answer asks the
database once per missing id and then remembers the miss, however it spells that (the
JSON null, a sentinel string, a key of its own, a short TTL); code that guesses which
ids exist, or screens them without caching the miss, fails with a message that teaches.

The lab is seeded once into a database of this module's own on the machine's
PostgreSQL; each variant gets its own key prefix on the machine's Redis.
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
from sdtutor.services.redis import client, delete_prefix
from tests.conftest import REPO

LAB = REPO / "labs" / "05-caching"
REDIS = "redis://127.0.0.1:6379/0"
SOLUTION = (LAB / "solution" / "cache.py").read_text()

MISS = """\
    if product is None:
        cache.set(key, json.dumps(None), ex=MISSING_TTL)
    else:
"""
HIT = """\
        if cached is not None:
            return json.loads(cached)  # a hit; "null" is a cached "no such product"
"""


def variant(*edits: tuple[str, str]) -> str:
    """The reference solution with each (old, new) edit made; every `old` must be there."""
    text = SOLUTION
    for old, new in edits:
        assert old in text, f"the solution no longer has {old!r}"
        text = text.replace(old, new)
    return text


# ------------------------------------------------------------------ correct ways

CORRECT: dict[str, str] = {
    "json-null": SOLUTION,
    "sentinel-string": variant(
        (MISS, MISS.replace("json.dumps(None)", '"__no_such_product__"')),
        (
            HIT,
            '        if cached == "__no_such_product__":\n            return None\n' + HIT,
        ),
        (
            "                if cached is not None:\n"
            "                    return json.loads(cached)\n",
            '                if cached == "__no_such_product__":\n'
            "                    return None\n"
            "                if cached is not None:\n"
            "                    return json.loads(cached)\n",
        ),
    ),
    "separate-missing-key": variant(
        (
            MISS,
            "    if product is None:\n"
            '        cache.set(f"{PREFIX}missing:{product_id}", 1, ex=MISSING_TTL)\n'
            "    else:\n",
        ),
        (
            "    while True:\n        cached = cache.get(key)\n",
            "    while True:\n"
            '        if cache.exists(f"{PREFIX}missing:{product_id}"):\n'
            "            return None\n"
            "        cached = cache.get(key)\n",
        ),
    ),
    "ten-second-ttl": variant(("MISSING_TTL = 30", "MISSING_TTL = 10")),
}

# ------------------------------------------------------------------ wrong ways

WRONG: dict[str, tuple[str, list[str]]] = {
    "guesses-missing-ids": (
        (LAB / "wrong" / "guesses-missing-ids" / "cache.py").read_text(),
        ["without asking postgresql", "only the database knows which products exist"],
    ),
    "max-id-instead-of-misses": (
        (LAB / "wrong" / "max-id-instead-of-misses" / "cache.py").read_text(),
        ["which the checker had just deleted", "cache penetration"],
    ),
    "no-negative-cache": (
        variant((MISS, "    if product is not None:\n")),
        ["sent 5 statements", "cache the 'not found' too"],
    ),
    "misses-cached-for-a-tenth-of-a-second": (
        variant(("json.dumps(None), ex=MISSING_TTL", "json.dumps(None), px=100")),
        ["too soon to protect anything", "cache penetration"],
    ),
    "misses-cached-for-an-hour": (
        variant(("MISSING_TTL = 30", "MISSING_TTL = 3600")),
        ["stays invisible that long", "at most 60 s"],
    ),
    "misses-cached-forever": (
        variant(("json.dumps(None), ex=MISSING_TTL", "json.dumps(None)")),
        ["no expiry", "stays invisible"],
    ),
    "claims-a-product-for-a-missing-id": (
        variant(
            (
                "    return product\n\n\ndef get_product",
                "    return product or {'id': product_id}\n\n\ndef get_product",
            ),
        ),
        ["but no product has that id", "return none"],
    ),
}


# ------------------------------------------------------------------ machinery


@pytest.fixture(scope="module")
def database(system_postgres: str) -> Iterator[str]:
    """The caching lab's seeded database, for this module only; yields its URL."""
    name = f"sdtutor_test_caching_gap_{secrets.token_hex(4)}"
    postgres.create_database(system_postgres, name)
    try:
        url = postgres.with_database(system_postgres, name)
        postgres.run_setup(url, LAB / "setup.sql")
        yield url
    finally:
        postgres.drop_database(system_postgres, name)


@pytest.fixture(scope="module")
def lab() -> LabSpec:
    """The caching lab with only its negative-cache check."""
    spec = load_lab(LAB)
    return dataclasses.replace(spec, checks=[c for c in spec.checks if c.id == "negative-cache"])


def judge(lab: LabSpec, database: str, code: str) -> CheckResult:
    """Run the negative-cache check on a workspace holding `code` as cache.py."""
    prefix = f"sdtutor-test-caching:{secrets.token_hex(4)}:"
    with tempfile.TemporaryDirectory(prefix="sdtutor-caching-gap-") as tmp:
        workspace = Path(tmp)
        shutil.copyfile(LAB / "starter" / "play.py", workspace / "play.py")
        (workspace / "cache.py").write_text(code)
        try:
            [result] = run_checks(
                lab,
                workspace,
                {"postgres": database, "redis": REDIS},
                prefixes={"redis": prefix},
            )
        finally:
            admin = client(REDIS)
            delete_prefix(admin, prefix)
            admin.close()
    return result


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_negative_caching_passes(name: str, lab: LabSpec, database: str) -> None:
    result = judge(lab, database, CORRECT[name])
    assert result.passed, result.message
    assert "the first of them asking it" in result.message


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_negative_caching_fails_and_says_why(name: str, lab: LabSpec, database: str) -> None:
    code, says = WRONG[name]
    result = judge(lab, database, code)
    assert not result.passed and result.status != "error", result.message
    for phrase in says:
        assert phrase in result.message.lower(), result.message


def test_the_deleted_product_is_back(lab: LabSpec, database: str) -> None:
    """The check deletes a product for a moment; it puts it back, as it was."""
    import psycopg

    with psycopg.connect(database) as conn:
        before = conn.execute("SELECT * FROM products WHERE id = 2468").fetchall()
    judge(lab, database, WRONG["max-id-instead-of-misses"][0])  # fails mid-way
    judge(lab, database, SOLUTION)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT * FROM products WHERE id = 2468").fetchall() == before
        assert conn.execute("SELECT count(*) FROM products").fetchone() == (5000,)
